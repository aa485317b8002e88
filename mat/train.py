"""The training loop: ``fit(resolve(cfg))`` runs any method on any task and returns the trial record.

``fit`` owns the side effects of a run (the record's status, signals, checkpoints, evaluation cadence,
best-so-far); :func:`setup` builds what a run trains with (:class:`Run`), and :func:`train_loop` steps
through it. The method objects own one training step each and know nothing of this. Evaluation lives in
:mod:`mat.evaluation`, provenance and output paths in :mod:`mat.provenance`, the device in
:mod:`mat.runtime`, the autocast format (and its first-batch check) in :mod:`mat.precision`.
"""

from __future__ import annotations

import logging
import math
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from mat.batching import make_loader, tokenize
from mat.checkpoint import CheckpointManager, Resumed
from mat.combined_nli import load_combined_nli
from mat.data import load_raw, require_split
from mat.evaluation import (
    EvalSet,
    build_eval_sets,
    dev_labels,
    eval_steps,
    evaluate,
    selection_value,
    write_test_predictions,
)
from mat.methods import Method, get_method
from mat.modeling import load_model_and_tokenizer
from mat.optim import make_optimizer
from mat.precision import Precision, check_precision, choose_precision
from mat.provenance import Trial, new_record
from mat.runtime import install_stop_handlers, resolve_device, restore_handlers, seed_everything
from mat.spec.config import TrialConfig
from mat.spec.cost import CostMeter
from mat.spec.records import EvalResult, TrialRecord, write_record
from mat.spec.tasks import TaskSpec
from mat.telemetry import TENSORBOARD_DIR, Telemetry

log = logging.getLogger("mat.train")

OnEval = Callable[[EvalResult, TrialRecord], None]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf."""


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT arrived; the record says INTERRUPTED and a checkpoint was written."""


@dataclass
class _State:
    step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stop_signal: int | None = None


@dataclass
class Run:
    """Everything one trial trains with, built by :func:`setup`."""

    cfg: TrialConfig
    task: TaskSpec
    device: torch.device
    autocast: torch.dtype | None
    raw: Any  # the task's DatasetDict (test splits for --predict)
    model: Any
    tokenizer: Any
    train_loader: Any
    eval_sets: list[EvalSet]
    steps_per_epoch: int
    total_steps: int
    eval_at: set[int]
    method: Method
    ckpt: CheckpointManager
    out_dir: Path
    precision: Precision
    meter: CostMeter
    telemetry: Telemetry  # step statistics -> <out_dir>/tensorboard and the evaluations' means


def fit(trial: Trial, record: TrialRecord | None = None, on_eval: OnEval | None = None,
        show_progress: bool = True, startup_seconds: float | None = None) -> TrialRecord:
    """Train ``trial.method`` on ``trial.task`` and return the finished trial record.

    The record is written (atomically) to the output dir at the start, after every evaluation and at
    the end. A failure (bad data, NaN loss, out of memory) marks it FAILED with the reason before the
    exception propagates; SIGTERM/SIGINT mark it INTERRUPTED, write a checkpoint and raise
    :class:`TrainingInterrupted`.

    Args:
        trial: the configuration with its task, method and output folder resolved
            (:func:`mat.provenance.resolve`).
        record: a record to fill (the NNI trial passes one with its ids); a new one otherwise.
        on_eval: called after each evaluation with the result and the record (NNI reports from here).
        show_progress: draw a tqdm bar (with tokens/s and the time left).
        startup_seconds: the process's start-up and import time, for the record's ``cost`` (the trial script
            passes it).
    """
    cfg, out_dir = trial.cfg, trial.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    record = record or new_record(cfg)
    record.status, record.error = "RUNNING", None
    write_record(record, out_dir)
    state = _State()
    previous = install_stop_handlers(lambda signum: setattr(state, "stop_signal", signum))
    meter = CostMeter()
    meter.seconds["startup"] = startup_seconds or 0.0
    run: Run | None = None
    try:
        run = setup(trial, meter)
        record.dev_labels = dev_labels(run.eval_sets, run.task)  # once; each evaluation keeps its predictions
        train_loop(run, record, state, on_eval, show_progress)
        finish(run, record, state)
        record.status = "SUCCEEDED"
    except TrainingInterrupted as e:
        record.status, record.error = "INTERRUPTED", str(e)
        raise
    except BaseException as e:
        record.status, record.error = "FAILED", _describe(e, cfg, state)
        raise
    finally:
        restore_handlers(previous)
        if run is not None:
            run.telemetry.close()
        record.wall_seconds = meter.elapsed()  # every process of a resumed run
        record.train_steps = state.step
        write_record(record, out_dir)
        if run is not None:  # after the record: a store folder goes once the run is SUCCEEDED on disk
            run.ckpt.close(succeeded=record.status == "SUCCEEDED")
    return record


def setup(trial: Trial, meter: CostMeter) -> Run:
    """Seed, load the data and the model, tokenize, and build the optimizer, schedule, method and
    checkpoints."""
    cfg, task, out_dir = trial.cfg, trial.task, trial.out_dir
    run, train = cfg.run, cfg.train
    seed_everything(train.seed)
    device = resolve_device(run.device)
    with meter.phase("data"):  # only the examples the run uses are tokenized
        raw = load_raw(task, run.data_dir)
        train_raw = _train_split(cfg, task, raw)
        if run.max_train_samples is not None:
            train_raw = train_raw.select(range(min(run.max_train_samples, len(train_raw))))
    with meter.phase("model"):
        model, tokenizer = load_model_and_tokenizer(run.model, task)
        model.to(device)
        precision = choose_precision(run.precision, device, trial.method, cfg.method, model)
    log.info("precision %s: %s", precision.name, precision.reason)
    with meter.phase("tokenize"):
        train_tok = tokenize(train_raw, tokenizer, task, run.max_length, run.cache_dir)
        train_loader = make_loader(train_tok, tokenizer, train.batch_size, shuffle=True, seed=train.seed,
                                   num_workers=run.num_workers, group_by_length=run.group_by_length)
        eval_sets = build_eval_sets(cfg, task, raw, tokenizer)

    steps_per_epoch = len(train_loader)
    total = run.max_steps or max(1, math.ceil(train.epochs * steps_per_epoch))
    optimizer, scheduler = make_optimizer(trial, model, total)
    method = get_method(trial.method)(model, optimizer, scheduler, task, cfg.method,
                                      diagnostics=run.diagnostics,
                                      max_grad_norm=float(train.max_grad_norm or 0.0),
                                      autocast_dtype=precision.dtype)
    telemetry = Telemetry(out_dir / TENSORBOARD_DIR)
    ckpt = CheckpointManager(out_dir, cfg, model, optimizer, scheduler, method, train_loader.generator,
        telemetry, meter)
    when = eval_steps(steps_per_epoch, total, run.eval_times, run.eval_schedule)
    log.info("task %s: %d train examples, %d steps/epoch, %d steps, evaluating at %d points on %s",
             task.name, len(train_raw), steps_per_epoch, total, len(when), [e.split for e in eval_sets])
    return Run(cfg, task, device, precision.dtype, raw, model, tokenizer, train_loader, eval_sets,
               steps_per_epoch, total, when, method, ckpt, out_dir, precision, meter, telemetry)


def _train_split(cfg: TrialConfig, task: TaskSpec, raw: Any) -> Any:
    """The task's train split, or with ``--train_mix combined`` the combined NLI set (ANLI tasks only)."""
    if cfg.run.train_mix == "combined":  # RunArgs allows it for ANLI tasks only
        return load_combined_nli(cfg.run.data_dir)
    return require_split(raw, task, task.train_split, cfg.run.data_dir)


def train_loop(run: Run, record: TrialRecord, state: _State, on_eval: OnEval | None,
    show_progress: bool) -> None:
    """Step through the batches until ``run.total_steps``: evaluate, checkpoint and stop on a signal as due.

    A checkpoint (output dir or store) is resumed first (same batch order, same RNG state after its step).

    Raises:
        NonFiniteLossError: the task loss became NaN or inf.
        TrainingInterrupted: SIGTERM/SIGINT arrived (a checkpoint was written after the current step).
    """
    cfg, keep_best = run.cfg, run.cfg.run.predict or run.cfg.run.checkpoint_every > 0
    epoch, skip = 0, 0
    resumed: Resumed | None = run.ckpt.load_latest(record, state)
    if resumed is not None:
        epoch, skip = resumed.epoch, resumed.batch_in_epoch
        log.info("resumed from %s at step %d (epoch %d, batch %d)", resumed.path, state.step, epoch, skip)
    record.params["precision"], record.precision = run.precision.name, run.precision.record()
    run.model.train()
    bar = tqdm(total=run.total_steps, initial=state.step, desc=f"{cfg.run.method} {run.task.name}",
        disable=not show_progress, dynamic_ncols=True)
    while state.step < run.total_steps:
        run.ckpt.epoch_start(epoch)
        for i, batch in enumerate(run.train_loader):
            if i < skip:  # resuming: batches this epoch already trained on (same order: same generator state)
                continue
            if i == skip and resumed is not None:
                run.ckpt.restore_rng(resumed)  # the RNG exactly as it was after the checkpointed step
                resumed = None
            run.meter.add_batch(batch)  # counted on the loader's CPU tensors: no device sync
            batch = {k: v.to(run.device) for k, v in batch.items()}
            if run.precision.check and "logit_change" not in (record.precision or {}):
                # can the format hold δ?
                record.precision = check_precision(run.precision, run.model, batch)
            with run.meter.phase("train"):
                stats = run.method.step(batch)
            state.step += 1
            run.telemetry.add(state.step, stats)
            loss = stats.get("loss", float("nan"))
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"non-finite loss ({loss}) at step {state.step}: lower the learning "
                    "rate or the method's step sizes")
            bar.update(1)
            bar.set_postfix({**{k: f"{v:.4g}" for k, v in stats.items() if k in ("loss", "adv_loss")},
                "tok/s": f"{run.meter.tokens_per_second():.0f}"})
            if state.step in run.eval_at:
                _evaluate(run, record, state, keep_best, on_eval)
            if state.stop_signal is not None:
                path = run.ckpt.save(state, record, epoch, i + 1)
                raise TrainingInterrupted(f"stopped by {signal.Signals(state.stop_signal).name} at step "
                    f"{state.step}; checkpoint {path}")
            if (cfg.run.checkpoint_every and state.step % cfg.run.checkpoint_every == 0
                    and state.step < run.total_steps):
                run.ckpt.save(state, record, epoch, i + 1)
            if state.step >= run.total_steps:
                break
        if resumed is not None:  # the checkpoint closed an epoch: its batches were replayed, none trained
            run.ckpt.restore_rng(resumed)
            resumed = None
        epoch, skip = epoch + 1, 0
    bar.close()


def finish(run: Run, record: TrialRecord, state: _State) -> None:
    """Close the record (``final``, ``cost``), save the model and write test predictions if asked."""
    record.final = record.evals[-1]
    counts = run.method.counts  # training's passes, the --diagnostics passes and every optimizer update
    record.cost = run.meter.to_dict(state.step, counts.passes, counts.updates, counts.diagnostic_passes)
    log.info("%s", run.meter.summary(state.step, counts.passes))
    if run.cfg.run.save_model:
        run.model.save_pretrained(run.out_dir / "model")
        run.tokenizer.save_pretrained(run.out_dir / "model")
    if run.cfg.run.predict:
        if state.best_state is not None:
            run.model.load_state_dict(state.best_state)
        path = write_test_predictions(run.cfg, run.task, run.raw, run.model, run.tokenizer, run.device,
            run.autocast, run.out_dir)
        record.test_predictions = str(path)


def _evaluate(run: Run, record: TrialRecord, state: _State, keep_best: bool, on_eval: OnEval | None) -> None:
    with run.meter.phase("evaluate"):
        ev = evaluate(run.model, run.eval_sets, run.task, run.device, run.autocast, state.step,
            state.step / run.steps_per_epoch)
    ev.telemetry = run.telemetry.evaluation(ev)  # mean step statistics since the previous evaluation
    record.evals.append(ev)
    pick = run.cfg.run.select_metric
    if record.best is None or selection_value(ev, pick) > selection_value(record.best, pick):
        record.best = ev
        if keep_best:
            state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in run.model.state_dict().items()}
    log.info("step %d: %s score %.4f", ev.step, ev.metrics, ev.score)
    if on_eval is not None:
        on_eval(ev, record)
    with run.meter.phase("write"):
        write_record(record, run.out_dir)


def _describe(e: BaseException, cfg: TrialConfig, state: _State) -> str:
    if isinstance(e, torch.OutOfMemoryError):
        return (
            f"out of memory at step {state.step} with batch_size {cfg.train.batch_size} and max_length "
            f"{cfg.run.max_length}: lower --batch_size or --max_length ({e})"
        )
    if isinstance(e, KeyboardInterrupt):
        return "interrupted by the user (KeyboardInterrupt)"
    return f"{type(e).__name__}: {e}"
