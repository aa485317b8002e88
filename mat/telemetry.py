"""Per-step telemetry: every training step's statistics as TensorBoard scalars, and their means per
evaluation interval for the trial record.

``fit`` hands each step's statistics (the plain floats a method's ``step`` returns: ``loss``, ``adv_loss``,
``lr``, ``grad_norm``, ``update_norm``, MAT's ``delta_norm``, ``delta_kl``, ``theta_noise_norm`` and, with
``--diagnostics``, ``dropout_kl`` and ``delta_own_kl``; docs/methods.md lists them per method) to
:meth:`Telemetry.add`, and at every evaluation takes :meth:`Telemetry.interval`: the mean of each statistic
over the steps since the previous evaluation, which the record keeps as the evaluation's ``telemetry``. A
statistic a step did not report (the parameter-wide norms are measured on every 10th step,
:mod:`mat.methods.stats`) is averaged over the steps that did; an interval with none leaves it out.

TensorBoard files go to ``<output_dir>/tensorboard/`` (under NNI ``$NNI_OUTPUT_DIR/tensorboard``, the folder
NNI's web UI opens TensorBoard on): scalars ``train/<statistic>`` per step, and ``dev/<metric>`` and
``dev/score`` per evaluation. The writer is opened on the first step; a run resumed from a checkpoint opens it
with ``purge_step`` at its first step, so TensorBoard drops the events of steps the interrupted run had
written after that checkpoint; the checkpoint keeps the open interval's sums (:meth:`Telemetry.state_dict`),
so the resumed run's interval means are those of an uninterrupted run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from torch.utils.tensorboard import SummaryWriter

from mat.spec.records import EvalResult

TENSORBOARD_DIR = "tensorboard"
TRAIN_TAG = "train"
DEV_TAG = "dev"


class Telemetry:
    """Step statistics -> TensorBoard scalars and per-interval means.

    Args:
        log_dir: the TensorBoard folder (``<output_dir>/tensorboard``), created on the first step.
        flush_secs: how often the writer's thread flushes on its own (it also flushes at every evaluation).
    """

    def __init__(self, log_dir: str | Path, flush_secs: int = 30) -> None:
        self.log_dir = Path(log_dir)
        self.flush_secs = flush_secs
        self.writer: Any | None = None
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def _open(self, step: int) -> Any:
        if self.writer is None:
            # resumed: drop events at and after this step from earlier files
            purge = step if step > 1 else None
            self.writer = SummaryWriter(str(self.log_dir), purge_step=purge, flush_secs=self.flush_secs)
        return self.writer

    def add(self, step: int, stats: Mapping[str, float]) -> None:
        """Record one training step's statistics (step numbers from 1)."""
        writer = self._open(step)
        for name, value in stats.items():
            value = float(value)
            writer.add_scalar(f"{TRAIN_TAG}/{name}", value, step)
            self._sums[name] = self._sums.get(name, 0.0) + value
            self._counts[name] = self._counts.get(name, 0) + 1

    def interval(self) -> dict[str, float]:
        """The mean of each statistic over the steps added since the last call (NaN/inf propagate), then
        reset."""
        means = {k: self._sums[k] / self._counts[k] for k in sorted(self._sums)}
        self._sums, self._counts = {}, {}
        return means

    def evaluation(self, ev: EvalResult) -> dict[str, float]:
        """Write the evaluation's dev metrics and score at its step, flush, and return :meth:`interval`."""
        writer = self._open(ev.step)
        for name, value in ev.metrics.items():
            writer.add_scalar(f"{DEV_TAG}/{name}", float(value), ev.step)
        if math.isfinite(ev.score):
            writer.add_scalar(f"{DEV_TAG}/score", float(ev.score), ev.step)
        writer.flush()
        return self.interval()

    def state_dict(self) -> dict[str, Any]:
        """The open interval's sums and counts (a checkpoint keeps them, so a resumed run's means are
        exact)."""
        return {"sums": dict(self._sums), "counts": dict(self._counts)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (an empty mapping: nothing to restore)."""
        self._sums = {str(k): float(v) for k, v in (state.get("sums") or {}).items()}
        self._counts = {str(k): int(v) for k, v in (state.get("counts") or {}).items()}

    def close(self) -> None:
        """Flush and close the writer (nothing to do when no step ran)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
