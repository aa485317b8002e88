"""What a trial costs: wall seconds per phase, tokens, padding and passes, for the record's ``cost`` block.

``fit`` times its phases with one :class:`CostMeter` and counts the training tokens of every batch; the
method counts its forward and backward passes (:attr:`mat.methods.base.Method.passes`). The block lets a
user see where a trial's time went and lets ``analysis`` set accuracy against compute::

    cost: {wall_seconds: {startup, data, tokenize, model, train, evaluate, write, total},
           train_tokens, padded_tokens, optimizer_steps, passes: {forward, backward}}

``startup`` is the time from the process's start (``/proc/self/stat`` on Linux) to the start of ``fit``:
interpreter start and imports. ``train`` excludes the evaluations that happen between training steps.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

PHASES = ("startup", "data", "tokenize", "model", "train", "evaluate", "write")


def process_age(now: float | None = None) -> float | None:
    """Seconds since this process started (Linux: from ``/proc``), or None where that is unknown."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@dataclass
class CostMeter:
    """Accumulates wall seconds per phase and the token counts of the training batches."""

    seconds: dict[str, float] = field(default_factory=lambda: {p: 0.0 for p in PHASES})
    train_tokens: int = 0
    padded_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the ``with`` block to ``name``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def add_batch(self, batch: Mapping[str, Any]) -> None:
        """Count one training batch: real tokens (``attention_mask`` 1) and padding (0) of its (B, T) inputs;
        without a mask every position of ``input_ids`` is real."""
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else int(ids.numel())
        self.train_tokens += real
        self.padded_tokens += int(ids.numel()) - real

    def tokens_per_second(self) -> float:
        """Real training tokens per second of training time so far (0 before the first step)."""
        t = self.seconds.get("train", 0.0)
        return self.train_tokens / t if t > 0 else 0.0

    def to_dict(self, optimizer_steps: int, passes: Mapping[str, float],
        startup: float | None = None) -> dict[str, Any]:
        """The record's ``cost`` block; ``total`` is the wall time of ``fit`` plus ``startup``."""
        secs = dict(self.seconds)
        if startup is not None:
            secs["startup"] = startup
        secs["total"] = secs.get("startup", 0.0) + time.perf_counter() - self.started
        return {
            "wall_seconds": {k: round(v, 3) for k, v in secs.items()},
            "train_tokens": self.train_tokens,
            "padded_tokens": self.padded_tokens,
            "optimizer_steps": optimizer_steps,
            "passes": {k: round(float(v), 2) for k, v in passes.items()},
        }

    def summary(self, optimizer_steps: int, passes: Mapping[str, float], startup: float | None = None) -> str:
        """One log line: where the time went."""
        c = self.to_dict(optimizer_steps, passes, startup)
        w = c["wall_seconds"]
        parts = ", ".join(f"{k} {w[k]:.1f}s" for k in (*PHASES, "total") if k in w)
        total = c["train_tokens"] + c["padded_tokens"]
        pad = 100.0 * c["padded_tokens"] / total if total else 0.0
        return (f"cost: {parts}; {c['train_tokens']} train tokens ({pad:.1f}% padding), {optimizer_steps} "
                f"steps, {c['passes'].get('forward', 0):g} forward / {c['passes'].get('backward', 0):g} "
                "backward passes")
