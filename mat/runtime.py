"""Where a trial computes: seeds, the device and the CPU threads (the autocast format is
:mod:`mat.precision`'s, as it depends on the method and the model).

No model or data here: :mod:`mat.train` asks this module once, at set-up.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from typing import Any, Callable

import numpy as np
import torch

log = logging.getLogger("mat.runtime")


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def trial_threads(num_threads: int, concurrency: int | None,
    environ: dict[str, str] | None = None) -> tuple[int, str]:
    """How many CPU threads a trial uses, and why.

    ``num_threads`` > 0 (the flag) wins; then ``$OMP_NUM_THREADS``; then, when ``concurrency`` trials share
    this machine, ``available_cores() // concurrency`` (at least 1): concurrent trials that each start one
    thread per core oversubscribe the CPU (2 trials on 2 cores ran 4x slower than one alone). Otherwise
    torch's default.
    """
    env = os.environ if environ is None else environ
    if num_threads > 0:
        return num_threads, "--num_threads"
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    if concurrency is not None and concurrency > 0:
        cores = available_cores()
        return max(1, cores // concurrency), f"{cores} cores / trialConcurrency {concurrency}"
    return torch.get_num_threads(), "torch default"


def set_threads(n: int, why: str) -> None:
    """``torch.set_num_threads(n)`` (intra-op) and log it."""
    torch.set_num_threads(n)
    log.info("using %d CPU thread%s (%s)", n, "" if n == 1 else "s", why)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu.

    Raises:
        ValueError: ``cuda`` asked for on a machine without CUDA.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no CUDA device (use --device cpu or auto)")
    return torch.device(name)


def install_stop_handlers(on_signal: Callable[[int], None]) -> dict[int, Any]:
    """Route SIGTERM and SIGINT to ``on_signal`` (main thread only); returns the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        on_signal(signum)
        log.warning("received %s: stopping after the current step", signal.Signals(signum).name)

    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def restore_handlers(previous: dict[int, Any]) -> None:
    """Put back what :func:`install_stop_handlers` replaced."""
    for sig, h in previous.items():
        signal.signal(sig, h)
