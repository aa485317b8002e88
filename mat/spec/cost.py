"""What a trial costs: wall seconds per phase, tokens, padding, optimizer updates and passes, for the record's
``cost`` block.

``fit`` times its phases with one :class:`CostMeter` and counts the training tokens of every batch; the
method counts its optimizer updates and its forward and backward passes (``Method.counts``,
:class:`mat.methods.stats.Counts`). The block lets a user see where a trial's time went and lets ``analysis``
set accuracy against compute::

    cost: {wall_seconds: {startup, data, tokenize, model, train, evaluate, write, total},
           cpu_seconds: {data, tokenize, model, train, evaluate, write},
           train_tokens, padded_tokens, optimizer_steps, optimizer_updates,
           passes: {forward, backward}, diagnostic_passes: {forward, backward}}

* ``optimizer_steps``: training steps (batches), the name older records use; ``optimizer_updates``: every
  optimizer step, so K_θ per batch for MAT (2 x ``optimizer_steps`` at K_θ = 2).
* ``passes``: what training needs, in units of one pass of the batch (a 2B forward counts 2; MAT's δ-phase
  input gradients count as backward passes); ``diagnostic_passes``: the measurement forwards that only
  ``--diagnostics`` runs (MAT's δ-own-KL or dropout-only forward, one per step), kept apart so a run with
  diagnostics does not look costlier than one without.

Records written before these were counted (no ``diagnostic_passes``) have ``passes`` that include the
diagnostic forward and no ``optimizer_updates``: :func:`derive_cost` fills in what their parameters and
telemetry determine and names it in ``derived``.

``cpu_seconds`` is the CPU time of this process (all its threads) in the same phases: unlike wall seconds it
hardly moves when other work shares the machine, so it is the cost to compare across trials that ran beside
each other (a study's trials run two at a time).

``startup`` is the time from the process's start (``/proc/self/stat`` on Linux) to the start of ``fit``:
interpreter start and imports. ``train`` excludes the evaluations that happen between training steps.

A trial resumed from a checkpoint costs the whole run: the checkpoint carries the meter
(:meth:`CostMeter.state_dict`), and the resumed process adds its own seconds to it, so every phase (start-up,
data and model loading, tokenizing included) counts each process that ran it; the steps trained after the last
checkpoint by a process that was then killed are lost and not counted. No torch here.
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
    cpu: dict[str, float] = field(default_factory=lambda: {p: 0.0 for p in PHASES[1:]})
    train_tokens: int = 0
    padded_tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    earlier: float = 0.0  # wall seconds of the earlier processes of a resumed run (their ``total``)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Add the wall time and the process CPU time of the ``with`` block to ``name``."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
            self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - c0

    def add_batch(self, batch: Mapping[str, Any]) -> None:
        """Count one training batch: real tokens (``attention_mask`` 1) and padding (0) of its (B, T) inputs;
        without a mask every position of ``input_ids`` is real."""
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        real = int(mask.sum()) if mask is not None else int(ids.numel())
        self.train_tokens += real
        self.padded_tokens += int(ids.numel()) - real

    def elapsed(self) -> float:
        """Wall seconds since this meter started, plus the earlier processes' of a resumed run."""
        return self.earlier + time.perf_counter() - self.started

    def state_dict(self) -> dict[str, Any]:
        """What the run has cost so far, for a checkpoint."""
        return {"seconds": dict(self.seconds), "cpu": dict(self.cpu), "train_tokens": self.train_tokens,
                "padded_tokens": self.padded_tokens, "elapsed": self.elapsed()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Add a checkpoint's :meth:`state_dict` to this process's counts (an older checkpoint's empty state
        changes nothing)."""
        for name, value in (state.get("seconds") or {}).items():
            self.seconds[name] = self.seconds.get(name, 0.0) + float(value)
        for name, value in (state.get("cpu") or {}).items():
            self.cpu[name] = self.cpu.get(name, 0.0) + float(value)
        self.train_tokens += int(state.get("train_tokens") or 0)
        self.padded_tokens += int(state.get("padded_tokens") or 0)
        self.earlier += float(state.get("elapsed") or 0.0)

    def tokens_per_second(self) -> float:
        """Real training tokens per second of training time so far (0 before the first step)."""
        t = self.seconds.get("train", 0.0)
        return self.train_tokens / t if t > 0 else 0.0

    def to_dict(self, optimizer_steps: int, passes: Mapping[str, float], updates: int | None = None,
                diagnostic: Mapping[str, float] | None = None) -> dict[str, Any]:
        """The record's ``cost`` block; ``total`` is the meter's ``startup`` (``fit`` sets it) plus the wall
        time since the meter started, each of every process of a resumed run.

        Args:
            optimizer_steps: training steps (batches).
            passes: training's forward and backward passes.
            updates: every optimizer step (the method's ``updates``); left out when None.
            diagnostic: the ``--diagnostics`` passes (the method's ``diagnostic_passes``); left out when None.
        """
        secs = dict(self.seconds)
        secs["total"] = secs.get("startup", 0.0) + self.elapsed()
        out: dict[str, Any] = {
            "wall_seconds": {k: round(v, 3) for k, v in secs.items()},
            "cpu_seconds": {k: round(v, 3) for k, v in self.cpu.items()},
            "train_tokens": self.train_tokens,
            "padded_tokens": self.padded_tokens,
            "optimizer_steps": optimizer_steps,
        }
        if updates is not None:
            out["optimizer_updates"] = int(updates)
        out["passes"] = {k: round(float(v), 2) for k, v in passes.items()}
        if diagnostic is not None:
            out["diagnostic_passes"] = {k: round(float(v), 2) for k, v in diagnostic.items()}
        return out

    def summary(self, optimizer_steps: int, passes: Mapping[str, float]) -> str:
        """One log line: where the time went."""
        c = self.to_dict(optimizer_steps, passes)
        w = c["wall_seconds"]
        parts = ", ".join(f"{k} {w[k]:.1f}s" for k in (*PHASES, "total") if k in w)
        total = c["train_tokens"] + c["padded_tokens"]
        pad = 100.0 * c["padded_tokens"] / total if total else 0.0
        return (f"cost: {parts}; {c['train_tokens']} train tokens ({pad:.1f}% padding), {optimizer_steps} "
                f"steps, {c['passes'].get('forward', 0):g} forward / {c['passes'].get('backward', 0):g} "
                "backward passes")


# Keys of the telemetry only --diagnostics records (mat.methods.mat): their presence says a trial measured.
DIAGNOSTIC_STATS = ("dropout_kl", "delta_own_kl")


def derive_cost(cost: Mapping[str, Any], method: str, params: Mapping[str, Any],
                telemetry: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """A record's ``cost`` block with what an older record lacks derived from its parameters, and named.

    A block that has ``diagnostic_passes`` (this version's) is returned as it is. An older one gets:

    * ``optimizer_updates`` = ``optimizer_steps`` x K_θ (``params.sampling_times_theta``) for MAT, x 1 for
      every other method (one optimizer step per batch);
    * ``diagnostic_passes``: where the trial measured (``telemetry`` holds ``dropout_kl`` or ``delta_own_kl``,
      which only ``--diagnostics`` records), one forward per training step for MAT, the extra forward its
      step ran; none otherwise. ``passes.forward`` loses that many, so ``passes`` is training's alone.

    ``derived`` lists the keys filled in this way (absent when nothing was derived).

    Args:
        cost: the record's ``cost`` block (may be empty).
        method: the ``--method`` the trial trained with (the record's ``method``).
        params: the record's ``params``.
        telemetry: the statistic names of the record's evaluations' ``telemetry``.
    """
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in cost.items()}
    steps = out.get("optimizer_steps")
    if "diagnostic_passes" in out or not isinstance(steps, (int, float)) or isinstance(steps, bool):
        return out
    derived = []
    if "optimizer_updates" not in out:
        k_theta = params.get("sampling_times_theta", 1)  # K_θ optimizer steps a batch (a MAT parameter)
        if isinstance(k_theta, (int, float)) and not isinstance(k_theta, bool):
            out["optimizer_updates"] = int(steps * k_theta)
            derived.append("optimizer_updates")
    passes = out.get("passes")
    if isinstance(passes, dict) and isinstance(passes.get("forward"), (int, float)):
        measured = bool(set(telemetry) & set(DIAGNOSTIC_STATS))  # only --diagnostics writes these
        extra = float(steps) if measured else 0.0
        out["diagnostic_passes"] = {"forward": extra, "backward": 0.0}
        passes["forward"] = round(float(passes["forward"]) - extra, 2)
        derived.append("diagnostic_passes")
        if extra:
            derived.append("passes")
    if derived:
        out["derived"] = derived
    return out
