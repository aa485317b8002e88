"""Evaluation: when to evaluate, the evaluation sets of a task, predictions, scores and test-set files.

The training loop (:mod:`mat.train`) calls :func:`evaluate` at the steps :func:`eval_steps` gives; every
function takes the task's :class:`~mat.spec.tasks.TaskSpec`, never its name.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mat.batching import make_loader, tokenize
from mat.data import require_split
from mat.spec.config import TrialConfig
from mat.spec.metrics import compute_metrics
from mat.spec.records import EvalResult, encode_values
from mat.spec.submission import submission_name, write_prediction_file
from mat.spec.tasks import SELECT_SCORE, TaskSpec, task_score

log = logging.getLogger("mat.evaluation")


def eval_steps(steps_per_epoch: int, total_steps: int, eval_times: int,
    schedule: str = "per_epoch") -> set[int]:
    """Steps (1-based, after the step) at which to evaluate (``--eval_schedule``).

    ``per_epoch``: ``eval_times`` evenly spaced in each epoch, and the last step. ``authors``: the rule of the
    authors' ``MAT.py`` (its ``current_iteration % eval_step == 0`` test, made after a batch and before the
    0-based counter moves on): after batch j = k·e + 1, k ≥ 1, counted across epochs, with e =
    ``steps_per_epoch // eval_times``; no evaluation at the end (their best is over these alone).

    Raises:
        ValueError: ``authors`` and e = 0 (more evaluations than batches per epoch), or no step qualifies.
    """
    if schedule == "authors":
        return _authors_eval_steps(steps_per_epoch, total_steps, eval_times)
    if schedule != "per_epoch":
        raise ValueError(f"unknown eval_schedule {schedule!r}: use per_epoch or authors")
    steps = {total_steps}
    epochs = math.ceil(total_steps / steps_per_epoch)
    for e in range(epochs):
        for k in range(1, eval_times + 1):
            s = e * steps_per_epoch + round(k * steps_per_epoch / eval_times)
            if 0 < s <= total_steps:
                steps.add(s)
    return steps


def _authors_eval_steps(steps_per_epoch: int, total_steps: int, eval_times: int) -> set[int]:
    every = steps_per_epoch // eval_times  # the authors' eval_step
    if every == 0:
        raise ValueError(
            "--eval_schedule authors evaluates every (batches per epoch // eval_times) batches: "
            f"{steps_per_epoch} // {eval_times} = 0; give --eval_times at most {steps_per_epoch} or use "
            "--eval_schedule per_epoch")
    steps = set(range(every + 1, total_steps + 1, every))
    if not steps:
        raise ValueError(
            f"--eval_schedule authors first evaluates after batch {every + 1}, and this run has "
            f"{total_steps} step(s): train longer, raise --eval_times or use --eval_schedule per_epoch")
    return steps


def selection_value(ev: EvalResult, select_metric: str) -> float:
    """The number that picks the best evaluation (``--select_metric``): the task score or one dev metric."""
    return ev.score if select_metric == SELECT_SCORE else ev.metrics[select_metric]


@torch.no_grad()
def predict(model: Any, loader: Any, task: TaskSpec, device: torch.device,
    autocast: torch.dtype | None) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) over a loader, each (N,) in dataset order: class ids (argmax) or regression
    scores.

    A loader that serves its examples in another order (``SortedByLength``, longest first) has that order
    on its sampler (``order``); the predictions are put back in dataset order, so test-set files line up
    with their indices.
    """
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
    p, r = torch.cat(preds).cpu(), torch.cat(refs).cpu()
    order = getattr(loader.sampler, "order", None)
    if order is not None:
        p, r = torch.empty_like(p).index_copy_(0, order, p), torch.empty_like(r).index_copy_(0, order, r)
    return p.numpy(), r.numpy()


@dataclass
class EvalSet:
    """One tokenized evaluation split and its loader."""

    split: str
    loader: Any
    dev: bool  # part of the model-selection score (the task's dev splits)


def build_eval_sets(cfg: TrialConfig, task: TaskSpec, raw: Any, tokenizer: Any) -> list[EvalSet]:
    """The task's dev splits (mandatory) and the ``--eval_splits`` extras, tokenized, with their loaders.

    Raises:
        DataError: the dev split or a requested extra split is absent.
        ValueError: an extra split has no labels (GLUE test sets).
    """
    run = cfg.run
    require_split(raw, task, task.dev_split, run.data_dir)
    splits = [(s, True) for s in task.eval_splits if s in raw]
    extra = [s.strip() for s in run.eval_splits.split(",") if s.strip()]
    for s in extra:
        if s in task.test_splits and not task.labelled_test:
            raise ValueError(f"{task.name}: {s!r} has no labels and cannot be evaluated; use --predict for "
                "test-set files")
    sets = []
    for split, dev in splits + [(s, False) for s in extra if s not in task.eval_splits]:
        ds = require_split(raw, task, split, run.data_dir)
        if run.max_eval_samples is not None:
            ds = ds.select(range(min(run.max_eval_samples, len(ds))))
        tok = tokenize(ds, tokenizer, task, run.max_length, run.cache_dir)
        sets.append(EvalSet(split, make_loader(tok, tokenizer, run.eval_batch_size, shuffle=False), dev))
    return sets


def evaluate(model: Any, sets: list[EvalSet], task: TaskSpec, device: torch.device,
    autocast: torch.dtype | None, step: int, epoch: float) -> EvalResult:
    """Evaluate every split; the dev metrics (MNLI: merged over its two dev sets) give the score. The dev
    predictions are kept in the result (``predictions``, compact text:
    :func:`mat.spec.records.encode_values`)."""
    dev: dict[str, float] = {}
    extra: dict[str, dict[str, float]] = {}
    kept: dict[str, str] = {}
    for es in sets:
        preds, refs = predict(model, es.loader, task, device, autocast)
        m = compute_metrics(task, preds, refs, split=es.split)
        if es.dev:
            dev.update(m)
            kept[es.split] = encode_values(preds.tolist(), task.is_regression)
        else:
            extra[es.split] = m
    return EvalResult(step=step, epoch=epoch, metrics=dev, score=task_score(task, dev), splits=extra,
                      predictions=kept)


def dev_labels(sets: list[EvalSet], task: TaskSpec) -> dict[str, str]:
    """The gold labels of the dev sets in dataset order (the order of :func:`predict`'s output), as the record
    keeps them once (``dev_labels``): with the evaluations' predictions, any subset of the dev set can be
    rescored without the data."""
    return {es.split: encode_values(np.asarray(es.loader.dataset["labels"]).tolist(), task.is_regression)
            for es in sets if es.dev}


def write_test_predictions(
    cfg: TrialConfig, task: TaskSpec, raw: Any, model: Any, tokenizer: Any, device: torch.device,
    autocast: torch.dtype | None, out_dir: Path
) -> Path:
    """Predict every test split present and write GLUE submission files (ANLI: ``<split>.tsv``).

    Raises:
        ValueError: the task has no test split available.
    """
    pred_dir = out_dir / "predictions"
    written = []
    for split in task.test_splits:
        if split not in raw:
            log.warning("%s: no %s split to predict (its file is absent)", task.name, split)
            continue
        tok = tokenize(raw[split], tokenizer, task, cfg.run.max_length, cfg.run.cache_dir)
        preds, _ = predict(model, make_loader(tok, tokenizer, cfg.run.eval_batch_size, shuffle=False), task,
            device, autocast)
        name = submission_name(task, split) if task.submission_files else f"{split}.tsv"
        written.append(write_prediction_file(pred_dir / name, task, raw[split]["idx"], preds))
    if not written:
        raise ValueError(f"--predict: {task.name} has no test split available to predict")
    return pred_dir
