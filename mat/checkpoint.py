"""Resumable checkpoints: everything needed to continue a trial bit for bit after it was killed.

A checkpoint (``<output_dir>/checkpoints/checkpoint-<step>.pt``) holds the model, optimizer, scheduler and
method state (e.g. SMART's teacher), the RNG states of torch (CPU and CUDA), numpy and python, the data
loader's generator state at the start of the current epoch and the position in it, the step, the
evaluations so far, the cost counted so far (:class:`mat.spec.cost.CostMeter`: a resumed trial's record
costs the whole run), and a fingerprint of the config, the code (:func:`mat.provenance.code_sha`) and the
torch and transformers versions. ``best.pt`` beside it holds the best-so-far weights. Writes are atomic
(temp file + ``os.replace``); only the newest checkpoint and the best weights are kept. Loading uses
``torch.load(weights_only=True)``: no arbitrary pickle is executed. A checkpoint whose fingerprint differs
from the running config is refused with the differing fields.

**A checkpoint store** (``--checkpoint_store DIR``, :func:`claim_store`): the checkpoints go to
``DIR/<key>/`` instead, the key a hash of the fingerprint, so any later run of the same configuration (another
output dir, another NNI experiment) finds and resumes them. The run holds an exclusive lock on its folder
(``fcntl.flock``, released by the kernel when the process dies) and deletes the folder when it succeeds
(:meth:`CheckpointManager.close`); a second run of the same configuration at the same time keeps its
checkpoints in its own output dir.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from mat import __version__
from mat.provenance import code_sha, versions
from mat.spec.config import TrialConfig
from mat.spec.cost import CostMeter
from mat.spec.records import TrialRecord, record_from_dict

log = logging.getLogger("mat.checkpoint")
FORMAT = 1
_NAME = re.compile(r"checkpoint-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (other config or code version, unreadable)."""


def fingerprint(cfg: TrialConfig) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: hyperparameters (the seed included), the run settings
    that change the result, the code (a hash of the ``mat`` package's sources) and the torch and
    transformers versions."""
    run = {"task": cfg.run.task, "model": cfg.run.model, "method": cfg.run.method, **cfg.run_settings()}
    return json.loads(json.dumps({**fingerprint_code(), "run": run, "params": cfg.params()}))


def store_key(cfg: TrialConfig) -> str:
    """The folder name of ``cfg``'s checkpoints in a checkpoint store: 16 hex digits of the SHA-256 of its
    :func:`fingerprint`."""
    text = json.dumps(fingerprint(cfg), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def try_lock(path: Path) -> IO[str] | None:
    """An open handle holding an exclusive ``flock`` on ``path``, or None when another process holds it.
    Without ``fcntl`` (not POSIX) nothing is locked."""
    handle = open(path, "a+")  # noqa: SIM115 - held open for the run's life
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


@dataclass
class StoreFolder:
    """A run's folder in a checkpoint store, locked while the run lives."""

    path: Path
    handle: IO[str]

    def release(self, delete: bool) -> None:
        """Unlock; with ``delete`` (the run succeeded: nothing left to resume) remove the folder first."""
        if delete:
            shutil.rmtree(self.path, ignore_errors=True)
        self.handle.close()


def claim_store(root: str | Path, cfg: TrialConfig) -> StoreFolder | None:
    """Lock ``<root>/<store_key(cfg)>/`` for this run (created with its ``fingerprint.json``), or None when
    another live run of the same configuration holds it (this run then checkpoints in its output dir)."""
    path = Path(root).expanduser() / store_key(cfg)
    path.mkdir(parents=True, exist_ok=True)
    handle = try_lock(path / ".lock")
    if handle is None:
        log.warning("checkpoint store %s is in use by another run of the same configuration: this run keeps "
                    "its checkpoints in its output dir", path)
        return None
    (path / "fingerprint.json").write_text(json.dumps(fingerprint(cfg), indent=1, sort_keys=True) + "\n")
    return StoreFolder(path, handle)


def prune_store(root: str | Path) -> list[Path]:
    """Delete the folders of a checkpoint store that this code can never resume (their ``fingerprint.json``
    names other code or versions, or is missing) and that no live run holds; returns them."""
    here = fingerprint_code()
    gone = []
    for folder in sorted(p for p in Path(root).expanduser().glob("*") if p.is_dir()):
        try:
            theirs = json.loads((folder / "fingerprint.json").read_text())
        except (OSError, ValueError):
            theirs = {}
        if {k: theirs.get(k) for k in here} == here:
            continue
        handle = try_lock(folder / ".lock")
        if handle is None:
            continue  # a live run of other code (another checkout) holds it
        shutil.rmtree(folder, ignore_errors=True)
        handle.close()
        gone.append(folder)
    return gone


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    """The step and path of the newest ``checkpoint-<step>.pt`` in ``folder``, or None."""
    found = [(int(m.group(1)), p)
             for p in Path(folder).glob("checkpoint-*.pt") if (m := _NAME.search(p.name))]
    return max(found) if found else None


def fingerprint_code() -> dict[str, Any]:
    """The code part of :func:`fingerprint`: mat's version, the sources' hash, torch and transformers."""
    stack = versions()
    return {"mat": __version__, "code_sha": code_sha(), "torch": stack["torch"],
            "transformers": stack["transformers"]}


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: checkpoint {a!r} != now {b!r}"]


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@dataclass
class Resumed:
    """Where a resumed run continues: the epoch, the batches of it already trained on, the RNG states."""

    path: Path
    epoch: int
    batch_in_epoch: int
    rng: dict[str, Any]


class CheckpointManager:
    """Saves and restores the whole training state of one trial's output dir."""

    def __init__(self, out_dir: Path, cfg: TrialConfig, model: Any, optimizer: Any, scheduler: Any,
                 method: Any, generator: torch.Generator, telemetry: Any = None,
                 meter: CostMeter | None = None) -> None:
        """The checkpoints go to ``<out_dir>/checkpoints``, or with ``cfg.run.checkpoint_store`` to the store
        folder this run claims (:func:`claim_store`; :meth:`close` releases it); ``meter``: the run's cost so
        far travels with the checkpoint."""
        self.store = claim_store(cfg.run.checkpoint_store, cfg) if cfg.run.checkpoint_store else None
        self.dir = self.store.path if self.store is not None else Path(out_dir) / "checkpoints"
        self.meter = meter
        self.fingerprint = fingerprint(cfg)
        self.model, self.optimizer, self.scheduler, self.method = model, optimizer, scheduler, method
        # mat.telemetry.Telemetry: the open interval's sums travel with the checkpoint
        self.telemetry = telemetry
        self.generator = generator
        self._epoch_state = generator.get_state().clone()
        self._best_saved: int | None = None

    def epoch_start(self, epoch: int) -> None:
        """Remember the loader generator's state before the epoch's iterator draws from it."""
        self._epoch_state = self.generator.get_state().clone()

    # ------------------------------------------------------------------------------------------ save

    def save(self, state: Any, record: TrialRecord, epoch: int, batch_in_epoch: int) -> Path:
        """Write ``checkpoint-<step>.pt`` (and ``best.pt`` when the best changed), prune older ones.

        ``epoch``/``batch_in_epoch``: the epoch being trained and how many of its batches are done. The
        loader generator is saved as it was at the start of that epoch: a resumed run replays the epoch's
        draws exactly (the sampler draws again lazily when an epoch's iterator runs out, so the state at
        an epoch's last batch is not yet the next epoch's start state).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        gen = self._epoch_state
        np_state: Any = np.random.get_state()
        payload = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "step": state.step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "generator": gen.clone(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "method": self.method.state_dict() if hasattr(self.method, "state_dict") else {},
            "telemetry": self.telemetry.state_dict() if self.telemetry is not None else {},
            "cost": self.meter.state_dict() if self.meter is not None else {},
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                    int(np_state[3]), float(np_state[4])],
                "python": list(random.getstate()),
            },
            "record": {k: v for k, v in record.to_dict().items() if k in ("evals", "best")},
        }
        path = self.dir / f"checkpoint-{state.step}.pt"
        _save_atomic(payload, path)
        if state.best_state is not None and record.best is not None and self._best_saved != record.best.step:
            _save_atomic({"step": record.best.step, "model": state.best_state}, self.dir / "best.pt")
            self._best_saved = record.best.step
        for old in self.dir.glob("checkpoint-*.pt"):
            if old != path and _NAME.search(old.name):
                old.unlink(missing_ok=True)
        log.info("checkpoint %s", path)
        return path

    # ------------------------------------------------------------------------------------------ load

    def latest(self) -> Path | None:
        """The newest ``checkpoint-<step>.pt``, or None."""
        found = latest_checkpoint(self.dir)
        return found[1] if found is not None else None

    def close(self, succeeded: bool) -> None:
        """Release the store folder, deleting it when the run succeeded (nothing left to resume)."""
        if self.store is not None:
            self.store.release(delete=succeeded)

    def load_latest(self, record: TrialRecord, state: Any) -> Resumed | None:
        """Restore model, optimizer, scheduler, method, loader generator, step and evaluations.

        Returns None when there is no checkpoint. The RNG states are returned, not applied: the loop
        applies them (:meth:`restore_rng`) once it has skipped the batches already trained on.

        Raises:
            CheckpointError: unreadable, another format, or another config/code version.
        """
        path = self.latest()
        if path is None:
            return None
        try:
            ck = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure means the same thing here
            raise CheckpointError(f"{path}: cannot be read ({type(e).__name__}: {e}); delete it to start "
                "over") from e
        if ck.get("format") != FORMAT:
            raise CheckpointError(f"{path}: checkpoint format {ck.get('format')!r}, this version reads "
                f"{FORMAT}; delete it to start over")
        diff = _diff(ck["fingerprint"], self.fingerprint)
        if diff:
            raise CheckpointError(
                f"{path} was written by another config or code version and is not resumed "
                f"({'; '.join(diff)}). Delete the checkpoints folder to start over, or use another "
                "--output_dir."
            )
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.scheduler.load_state_dict(ck["scheduler"])
        if hasattr(self.method, "load_state_dict"):
            self.method.load_state_dict(ck["method"])
        if self.telemetry is not None:
            self.telemetry.load_state_dict(ck.get("telemetry") or {})
        if self.meter is not None:
            self.meter.load_state_dict(ck.get("cost") or {})
        self.generator.set_state(ck["generator"])
        state.step = int(ck["step"])
        partial = record_from_dict({**record.to_dict(), **ck["record"]}, str(path))
        record.evals, record.best = partial.evals, partial.best
        best = self.dir / "best.pt"
        if record.best is not None and best.is_file():
            b = torch.load(best, map_location="cpu", weights_only=True)
            if int(b["step"]) == record.best.step:
                state.best_state = b["model"]
                self._best_saved = record.best.step
        return Resumed(path=path, epoch=int(ck["epoch"]), batch_in_epoch=int(ck["batch_in_epoch"]),
            rng=ck["rng"])

    @staticmethod
    def restore_rng(resumed: Resumed) -> None:
        """Put every RNG back to its state right after the checkpointed step."""
        rng = resumed.rng
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        name, keys, pos, has_gauss, gauss = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        random.setstate((rng["python"][0], tuple(rng["python"][1]), rng["python"][2]))

