"""The training loop: ``fit(cfg)`` runs any method on any task and returns the trial record.

``fit`` owns the side effects (data, model, optimizer, schedule, evaluation cadence, best-so-far,
records, checkpoints, signals); the method objects own one training step each and know nothing of this.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from mat import __version__
from mat.config import TrialConfig
from mat.data import load_raw, make_loader, require_split, tokenize
from mat.metrics import compute_metrics, task_score
from mat.modeling import load_model_and_tokenizer
from mat.records import EvalResult, TrialRecord, write_record
from mat.submission import submission_name, write_prediction_file
from mat.tasks import TaskSpec, get_task

log = logging.getLogger("mat.train")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT arrived; the record says INTERRUPTED and a checkpoint was written."""


# ------------------------------------------------------------------------------------ helpers


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


def resolve_autocast(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: only on CUDA; ``auto`` picks bf16 where supported, else fp16."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def versions() -> dict[str, str | None]:
    """Versions of the stack, for the record."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version(), "mat": __version__}
    for pkg in ("torch", "transformers", "datasets", "nni"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def git_sha() -> str | None:
    """The commit of the mat-harness checkout, when it is one."""
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def eval_steps(steps_per_epoch: int, total_steps: int, eval_times: int) -> set[int]:
    """Steps (1-based, after the step) at which to evaluate: ``eval_times`` per epoch, and the last step."""
    steps = {total_steps}
    epochs = math.ceil(total_steps / steps_per_epoch)
    for e in range(epochs):
        for k in range(1, eval_times + 1):
            s = e * steps_per_epoch + round(k * steps_per_epoch / eval_times)
            if 0 < s <= total_steps:
                steps.add(s)
    return steps


# ---------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model: Any, loader: Any, task: TaskSpec, device: torch.device, autocast: torch.dtype | None) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) over a loader: class ids (argmax) or regression scores."""
    was_training = model.training
    model.eval()
    preds, refs = [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        labels = batch.pop("labels")
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            logits = model(**batch).logits.float()
        preds.append(logits.squeeze(-1) if task.is_regression else logits.argmax(-1))
        refs.append(labels)
    model.train(was_training)
    return torch.cat(preds).cpu().numpy(), torch.cat(refs).cpu().numpy()


@dataclass
class EvalSet:
    """One tokenized evaluation split and its loader."""

    split: str
    loader: Any
    dev: bool  # part of the model-selection score (the task's dev splits)


@dataclass
class _State:
    step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stop_signal: int | None = None


# ------------------------------------------------------------------------------------------ fit


def default_output_dir(cfg: TrialConfig) -> Path:
    """``$NNI_OUTPUT_DIR`` is the trial's folder under NNI (the trial script passes it); else ``runs/...``."""
    if cfg.run.output_dir:
        return Path(cfg.run.output_dir)
    return Path("runs") / f"{_task_name(cfg.run.task)}-{cfg.run.method}-seed{cfg.train.seed}"


def _task_name(name: str) -> str:
    try:
        return get_task(name).name
    except KeyError:
        return name  # a record of a trial that failed on its task name keeps the name it was given


def new_record(cfg: TrialConfig, trial_id: str | None = None, experiment_id: str | None = None) -> TrialRecord:
    """A RUNNING record for ``cfg`` with versions and git sha filled in."""
    out = default_output_dir(cfg)
    return TrialRecord(
        trial_id=trial_id or cfg.run.trial_id or out.name,
        experiment_id=experiment_id,
        method=cfg.run.method,
        task=_task_name(cfg.run.task),
        model=cfg.run.model,
        seed=cfg.train.seed,
        params=cfg.params(),
        versions=versions(),
        git_sha=git_sha(),
    )


def fit(
    cfg: TrialConfig,
    record: TrialRecord | None = None,
    on_eval: Callable[[EvalResult, TrialRecord], None] | None = None,
    show_progress: bool = True,
) -> TrialRecord:
    """Train ``cfg.run.method`` on ``cfg.run.task`` and return the finished trial record.

    The record is written (atomically) to the output dir at the start, after every evaluation and at
    the end. A failure (bad data, NaN loss, out of memory) marks it FAILED with the reason before the
    exception propagates; SIGTERM/SIGINT mark it INTERRUPTED, write a checkpoint and raise
    :class:`TrainingInterrupted`.

    Args:
        cfg: the resolved trial configuration.
        record: a record to fill (the NNI trial passes one with its ids); a new one otherwise.
        on_eval: called after each evaluation with the result and the record (NNI reports from here).
        show_progress: draw a tqdm bar.
    """
    out_dir = default_output_dir(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = record or new_record(cfg)
    record.status, record.error = "RUNNING", None
    write_record(record, out_dir)
    start = time.time()
    state = _State()
    previous = _install_signal_handlers(state)
    try:
        _fit(cfg, record, state, out_dir, on_eval, show_progress)
        record.status = "SUCCEEDED"
    except TrainingInterrupted as e:
        record.status, record.error = "INTERRUPTED", str(e)
        raise
    except BaseException as e:
        record.status, record.error = "FAILED", _describe(e, cfg, state)
        raise
    finally:
        _restore_signal_handlers(previous)
        record.wall_seconds = time.time() - start
        record.train_steps = state.step
        write_record(record, out_dir)
    return record


def _describe(e: BaseException, cfg: TrialConfig, state: _State) -> str:
    if isinstance(e, torch.OutOfMemoryError):
        return (
            f"out of memory at step {state.step} with batch_size {cfg.train.batch_size} and max_length "
            f"{cfg.run.max_length}: lower --batch_size or --max_length ({e})"
        )
    if isinstance(e, KeyboardInterrupt):
        return "interrupted by the user (KeyboardInterrupt)"
    return f"{type(e).__name__}: {e}"


def _install_signal_handlers(state: _State) -> dict[int, Any]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: Any) -> None:
        state.stop_signal = signum
        log.warning("received %s: stopping after the current step", signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, h in previous.items():
        signal.signal(sig, h)


def _build_eval_sets(cfg: TrialConfig, task: TaskSpec, raw: Any, tokenizer: Any) -> list[EvalSet]:
    run = cfg.run
    require_split(raw, task, task.dev_split, run.data_dir)  # the dev split is mandatory
    splits = [(s, True) for s in task.eval_splits if s in raw]
    extra = [s.strip() for s in run.eval_splits.split(",") if s.strip()]
    for s in extra:
        if s in task.test_splits and not task.labelled_test:
            raise ValueError(f"{task.name}: {s!r} has no labels and cannot be evaluated; use --predict for test-set files")
    sets = []
    for split, dev in splits + [(s, False) for s in extra if s not in task.eval_splits]:
        ds = require_split(raw, task, split, run.data_dir)
        if run.max_eval_samples is not None:
            ds = ds.select(range(min(run.max_eval_samples, len(ds))))
        tok = tokenize(ds, tokenizer, task, run.max_length, run.cache_dir)
        sets.append(EvalSet(split, make_loader(tok, tokenizer, run.eval_batch_size, shuffle=False), dev))
    return sets


def evaluate(model: Any, sets: list[EvalSet], task: TaskSpec, device: torch.device, autocast: torch.dtype | None, step: int, epoch: float) -> EvalResult:
    """Evaluate every split; dev metrics (merged over MNLI's two dev sets) give the score."""
    dev: dict[str, float] = {}
    extra: dict[str, dict[str, float]] = {}
    for es in sets:
        preds, refs = predict(model, es.loader, task, device, autocast)
        m = compute_metrics(task.name, preds, refs, split=es.split)
        if es.dev:
            dev.update(m)
        else:
            extra[es.split] = m
    return EvalResult(step=step, epoch=epoch, metrics=dev, score=task_score(task.name, dev), splits=extra)


def _fit(
    cfg: TrialConfig,
    record: TrialRecord,
    state: _State,
    out_dir: Path,
    on_eval: Callable[[EvalResult, TrialRecord], None] | None,
    show_progress: bool,
) -> None:
    from tqdm.auto import tqdm
    from transformers import get_scheduler

    from mat.checkpoint import CheckpointManager
    from mat.methods import get_method
    from mat.optim import build_optimizer

    run, train = cfg.run, cfg.train
    task = get_task(run.task)
    seed_everything(train.seed)
    device = resolve_device(run.device)
    autocast = resolve_autocast(run.precision, device)

    raw = load_raw(task.name, run.data_dir)
    train_raw = require_split(raw, task, task.train_split, run.data_dir)
    if run.max_train_samples is not None:
        train_raw = train_raw.select(range(min(run.max_train_samples, len(train_raw))))
    model, tokenizer = load_model_and_tokenizer(run.model, task)
    model.to(device)
    train_tok = tokenize(train_raw, tokenizer, task, run.max_length, run.cache_dir)
    train_loader = make_loader(train_tok, tokenizer, train.batch_size, shuffle=True, seed=train.seed, num_workers=run.num_workers)
    eval_sets = _build_eval_sets(cfg, task, raw, tokenizer)

    steps_per_epoch = len(train_loader)
    total = run.max_steps or max(1, math.ceil(train.epochs * steps_per_epoch))
    optimizer = build_optimizer(
        model,
        getattr(cfg.method, "sampler", "adamw"),
        lr=float(train.learning_rate or 0.0),
        weight_decay=train.weight_decay,
        eps=train.adam_epsilon,
    )
    scheduler = get_scheduler(
        train.lr_scheduler_type, optimizer, num_warmup_steps=int(train.warmup_ratio * total), num_training_steps=total
    )
    method = get_method(run.method)(
        model, optimizer, scheduler, task, cfg.method,
        max_grad_norm=train.max_grad_norm, autocast_dtype=autocast, diagnostics=run.diagnostics,
    )
    when = eval_steps(steps_per_epoch, total, run.eval_times)
    ckpt = CheckpointManager(out_dir, cfg, model, optimizer, scheduler, method, train_loader.generator)
    keep_best = run.predict or run.checkpoint_every > 0
    epoch, skip = 0, 0
    resumed = ckpt.load_latest(record, state)
    if resumed is not None:
        epoch, skip = resumed.epoch, resumed.batch_in_epoch
        log.info("resumed from %s at step %d (epoch %d, batch %d)", resumed.path, state.step, epoch, skip)
    log.info(
        "task %s: %d train examples, %d steps/epoch, %d steps, evaluating at %d points on %s",
        task.name, len(train_raw), steps_per_epoch, total, len(when), [e.split for e in eval_sets],
    )
    model.train()
    bar = tqdm(total=total, initial=state.step, desc=f"{run.method} {task.name}", disable=not show_progress, dynamic_ncols=True)
    while state.step < total:
        ckpt.epoch_start(epoch)
        for i, batch in enumerate(train_loader):
            if i < skip:  # resuming: batches this epoch already trained on (same order: same generator state)
                continue
            if i == skip and resumed is not None:
                ckpt.restore_rng(resumed)  # the RNG exactly as it was after the checkpointed step
                resumed = None
            batch = {k: v.to(device) for k, v in batch.items()}
            stats = method.step(batch)
            state.step += 1
            loss = stats.get("loss", float("nan"))
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"non-finite loss ({loss}) at step {state.step}: lower the learning rate or the method's step sizes")
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items() if k in ("loss", "adv_loss")})
            if state.step in when:
                ev = evaluate(model, eval_sets, task, device, autocast, state.step, state.step / steps_per_epoch)
                _record_eval(record, ev, model, state, keep_best)
                log.info("step %d: %s score %.4f", ev.step, ev.metrics, ev.score)
                if on_eval is not None:
                    on_eval(ev, record)
                write_record(record, out_dir)
            if state.stop_signal is not None:
                path = ckpt.save(state, record, epoch, i + 1)
                raise TrainingInterrupted(f"stopped by {signal.Signals(state.stop_signal).name} at step {state.step}; checkpoint {path}")
            if run.checkpoint_every and state.step % run.checkpoint_every == 0 and state.step < total:
                ckpt.save(state, record, epoch, i + 1)
            if state.step >= total:
                break
        if resumed is not None:  # the checkpoint closed an epoch: its batches were replayed, none trained
            ckpt.restore_rng(resumed)
            resumed = None
        epoch, skip = epoch + 1, 0
    bar.close()
    record.final = record.evals[-1]
    if run.save_model:
        model.save_pretrained(out_dir / "model")
        tokenizer.save_pretrained(out_dir / "model")
    if run.predict:
        if state.best_state is not None:
            model.load_state_dict(state.best_state)
        record.test_predictions = str(write_test_predictions(cfg, task, raw, model, tokenizer, device, autocast, out_dir))


def _record_eval(record: TrialRecord, ev: EvalResult, model: Any, state: _State, keep_best: bool) -> None:
    record.evals.append(ev)
    if record.best is None or ev.score > record.best.score:
        record.best = ev
        if keep_best:
            state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def write_test_predictions(
    cfg: TrialConfig, task: TaskSpec, raw: Any, model: Any, tokenizer: Any, device: torch.device, autocast: torch.dtype | None, out_dir: Path
) -> Path:
    """Predict every test split present and write GLUE submission files (ANLI: ``<split>.tsv``)."""
    pred_dir = out_dir / "predictions"
    written = []
    for split in task.test_splits:
        if split not in raw:
            log.warning("%s: no %s split to predict (its file is absent)", task.name, split)
            continue
        tok = tokenize(raw[split], tokenizer, task, cfg.run.max_length, cfg.run.cache_dir)
        preds, _ = predict(model, make_loader(tok, tokenizer, cfg.run.eval_batch_size, shuffle=False), task, device, autocast)
        name = submission_name(task.name, split) if task.submission_files else f"{split}.tsv"
        written.append(write_prediction_file(pred_dir / name, task.name, raw[split]["idx"], preds))
    if not written:
        raise ValueError(f"--predict: {task.name} has no test split available to predict")
    return pred_dir
