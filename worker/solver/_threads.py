"""How many intra-op threads a solve uses: one for small problems, the caller's for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["SINGLE_THREAD_MAX_ENTRIES", "threads_for"]

#: Up to this many matrix entries per step (b n^2), a solve runs on one thread: intra-op
#: threads cost more than they save on so little arithmetic (a lone 16x16 adam solve runs ~1.5x
#: faster on one thread than on two on an idle machine, and ~100x on a busy one, while a batch
#: of 256 of them runs ~1.5x faster on two).
SINGLE_THREAD_MAX_ENTRIES = 64 * 64


@contextmanager
def threads_for(entries: int) -> Iterator[None]:
    """Run the enclosed solve on one thread when it has at most `SINGLE_THREAD_MAX_ENTRIES`
    entries a step, and give the caller its own thread count back afterwards.

    torch.set_num_threads sets the calling thread's OpenMP and MKL thread counts (per-thread
    settings in torch's OpenMP builds, the Linux CPU and CUDA wheels), so this changes nothing
    for other threads, whether they solve at the same time or not.
    """
    before = torch.get_num_threads()
    if entries > SINGLE_THREAD_MAX_ENTRIES or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
