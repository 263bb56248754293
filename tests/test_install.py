"""`make install`'s editable install of ninv prints no setuptools warnings or deprecations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def test_the_editable_install_prints_no_setuptools_warnings(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # What the Makefile runs, into a throwaway environment (dependencies left out: they are
    # not what builds ninv).
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")),
            *("install", "--quiet", "--no-deps", "-e", str(ROOT)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert install.returncode == 0, install.stderr
    said = install.stdout + install.stderr
    for noise in ("setuptools", "buildbackendwarning", "deprecat"):
        assert noise not in said.lower(), said
