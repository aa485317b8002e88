"""Synthetic trial records for the notebook, the tests' report runs and the benchmark.

Scores are made up, not results: a per-task base near the MAT paper's BERT-base numbers (Table 1), a
per-method offset, a smooth per-configuration effect, per-seed noise and a rising learning curve with
``n_evals`` intermediate evaluations. ANLI records carry their test split (``test_r1``...) and tasks with
AdvGLUE dev sets carry ``adv_validation`` (MNLI: ``adv_validation_matched``/``_mismatched``) in
``splits``. A fraction of trials can be failed (no evaluation) or still running (partial).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import random
from pathlib import Path
from typing import Iterator, Sequence

from mat.spec.ladder import RUNG_NAMES, get_rung
from mat.spec.records import RECORD_FILE, EvalResult, TrialRecord
from mat.spec.tasks import GLUE_TASKS, get_task

METHODS = ("vanilla", "freelb", "smart", "r3f", "mat")
# Synthetic per-task base values (0-100), near the MAT paper's Table 1 scale; not results.
BASE = {
    "cola": (60.0,), "sst2": (93.0,), "mrpc": (88.0, 91.5), "qqp": (91.0, 88.5), "stsb": (90.0, 89.6),
    "mnli": (85.5, 85.7), "qnli": (92.0,), "rte": (72.0,), "wnli": (56.0,), "anli_r1": (74.0,),
    "anli_r2": (50.0,), "anli_r3": (47.0,),
}
NOISE = {"cola": 1.0, "rte": 1.5, "mrpc": 0.8, "wnli": 2.0, "stsb": 0.4}
OFFSET = {"vanilla": -1.5, "freelb": -0.6, "smart": -0.4, "r3f": -0.5, "mat": 0.0}
LEARNING_RATES = (1e-5, 2e-5, 3e-5, 5e-5)
LAMBDAS = (0.1, 1.0, 3.0, 5.0, 10.0, 50.0)


def config_params(method: str, index: int) -> dict[str, float | int | str]:
    """The ``index``-th synthetic configuration of ``method`` (a grid over learning rate and lambda)."""
    lr = LEARNING_RATES[index % len(LEARNING_RATES)]
    lam = LAMBDAS[(index // len(LEARNING_RATES)) % len(LAMBDAS)]
    params: dict[str, float | int | str] = {"learning_rate": lr, "per_device_train_batch_size": 32,
                                            "num_train_epochs": 3, "config_index": index}
    if method != "vanilla":
        params["lambda_s"] = lam
    return params


def _config_effect(params: dict[str, float | int | str]) -> float:
    lr = float(params["learning_rate"])
    lam = float(params.get("lambda_s", 1.0))
    bump = 0.05 * (int(params["config_index"]) % 3)
    return -0.8 * abs(math.log10(lr / 2e-5)) - 0.25 * abs(math.log10(lam / 3.0)) + bump


def _splits(task: str, final: float, frac: float, rng: random.Random) -> dict[str, dict[str, float]]:
    spec = get_task(task)
    out: dict[str, dict[str, float]] = {}
    for split in spec.test_splits if spec.labelled_test else ():
        out[split] = {"accuracy": round(final * frac - 1.0 + rng.gauss(0, 0.5), 2)}
    for split in spec.extra_eval_splits:  # metric names as mat.spec.metrics.compute_metrics gives them
        names = (("accuracy_mm" if "mismatched" in split else "accuracy_m"),
            ) if task == "mnli" else spec.metrics
        out[split] = {m: round(0.6 * final * frac + rng.gauss(0, 1.0), 2) for m in names}
    return out


def make_record(method: str, task: str, seed: int, config: int, n_evals: int = 5,
    model: str = "bert-base-uncased",
                status: str = "SUCCEEDED", experiment_id: str | None = None) -> TrialRecord:
    """One synthetic record (deterministic in its arguments)."""
    rng = random.Random(f"{method}/{task}/{seed}/{config}/{model}")
    params = {**config_params(method, config), "seed": seed}
    level = OFFSET.get(method, 0.0) + _config_effect(params) + rng.gauss(0, NOISE.get(task, 0.3))
    rec = TrialRecord(trial_id=f"{method}-{task}-c{config}-s{seed}", method=method, task=task, model=model,
                      seed=seed, params=params, experiment_id=experiment_id, status=status)
    if status == "FAILED":
        rec.error = "RuntimeError: synthetic failure (CUDA out of memory)"
        return rec
    n = n_evals if status == "SUCCEEDED" else max(1, n_evals // 2)
    for i in range(1, n + 1):
        frac = 1.0 - 0.08 * (1.0 - i / n_evals) ** 2
        metrics = {m: round((b + level) * frac + rng.gauss(0, 0.15), 2)
                   for m, b in zip(get_task(task).metrics, BASE[task])}
        splits = _splits(task, BASE[task][0] + level, frac, rng)
        ev = EvalResult(step=100 * i, epoch=3.0 * i / n_evals, metrics=metrics,
                        score=sum(metrics.values()) / len(metrics), splits=splits)
        rec.evals.append(ev)
    rec.best = max(rec.evals, key=lambda e: e.score)
    rec.final = rec.evals[-1]
    rec.train_steps = rec.final.step
    rec.wall_seconds = round(rng.uniform(60, 600), 1)
    return rec


def synthetic_records(methods: Sequence[str] = METHODS, tasks: Sequence[str] = GLUE_TASKS,
                      seeds: Sequence[int] = (1, 2, 3, 4, 5), n_configs: int = 1, n_evals: int = 5,
                      model: str = "bert-base-uncased", limit: int | None = None, failed_every: int = 0,
                      running_every: int = 0) -> Iterator[TrialRecord]:
    """Records over configs x methods x tasks x seeds (configuration outermost, so ``limit`` cuts whole
    configurations last); every ``failed_every``-th trial FAILED, every ``running_every``-th RUNNING."""
    grid = itertools.product(range(n_configs), methods, tasks, seeds)
    for i, (config, method, task, seed) in enumerate(itertools.islice(grid, limit), start=1):
        status = "SUCCEEDED"
        if failed_every and i % failed_every == 0:
            status = "FAILED"
        elif running_every and i % running_every == 0:
            status = "RUNNING"
        yield make_record(method, task, seed, config, n_evals, model, status)


# Synthetic ladder: per-rung offsets (points), δ's own KL, and training's (forward, backward) passes per step
# the real trials count at K_δ = K_θ = 2 (tests/test_ladder.py checks those); with --diagnostics the
# MAT-method rungs add one diagnostic forward per step, counted apart, and make K_θ = 2 optimizer updates per
# step.
RUNG_OFFSET = {"vanilla": 0.0, "inner_steps": 0.4, "sampling": 0.6, "dropout_consistency": 1.2, "mat": 1.2,
               "mat_visible_delta": 0.9, "r3f": 0.7}
RUNG_PASSES = {"vanilla": (1, 1), "inner_steps": (2, 2), "sampling": (2, 2), "dropout_consistency": (5, 4),
               "mat": (7, 6), "mat_visible_delta": (7, 6), "r3f": (2, 2)}
RUNG_OWN_KL = {"dropout_consistency": 0.0, "mat": 5e-11, "mat_visible_delta": 4e-3}


def make_ladder_record(rung: str, task: str, seed: int, n_evals: int = 4,
    model: str = "minilm") -> TrialRecord:
    """One synthetic component-ladder record (``params.rung``, a cost block, telemetry per evaluation); the
    seed's effect is shared by every rung, so paired differences are tighter than the spread of each rung."""
    spec, name = get_task(task), get_rung(rung).name
    shared = random.Random(f"ladder/{task}/{seed}").gauss(0, NOISE.get(task, 0.3))  # the seed's own luck
    rng = random.Random(f"ladder/{name}/{task}/{seed}")
    params = {"learning_rate": 3e-5, "epochs": 3.0, "batch_size": 32, "seed": seed, "rung": name}
    rec = TrialRecord(trial_id=f"{name}-{task}-s{seed}", method=get_rung(rung).method, task=task, model=model,
                      seed=seed, params=params)
    level = BASE[task][0] - 20.0 + RUNG_OFFSET[name] + shared + rng.gauss(0, 0.2)
    for i in range(1, n_evals + 1):
        frac = 1.0 - 0.08 * (1.0 - i / n_evals) ** 2
        metrics = {m: round(level * frac + rng.gauss(0, 0.1), 2) for m in spec.metrics}
        telemetry = {"loss": 0.7 / i, "lr": 3e-5 * (1 - i / (n_evals + 1)), "grad_norm": 5.0 / i,
            "update_norm": 1e-3}
        if name not in ("vanilla", "r3f"):
            telemetry |= {"theta_noise_norm": 0.0 if name == "inner_steps" else 1e-6,
                "dropout_kl": 1.6e-4 / i}
        if name in RUNG_OWN_KL:
            telemetry |= {"delta_own_kl": RUNG_OWN_KL[name] / i, "adv_loss": 3 * 1.6e-4 / i}
        rec.evals.append(EvalResult(step=50 * i, epoch=3.0 * i / n_evals, metrics=metrics,
                                    score=sum(metrics.values()) / len(metrics), telemetry=telemetry))
    rec.best, rec.final = max(rec.evals, key=lambda e: e.score), rec.evals[-1]
    rec.status, rec.train_steps = "SUCCEEDED", rec.final.step
    fwd, bwd = RUNG_PASSES[name]
    mat_step = get_rung(rung).method == "mat"
    rec.cost = {"wall_seconds": {"train": 10.0 * (fwd + bwd)}, "optimizer_steps": rec.train_steps,
                "optimizer_updates": rec.train_steps * (2 if mat_step else 1),
                "passes": {"forward": fwd * rec.train_steps, "backward": bwd * rec.train_steps},
                "diagnostic_passes": {"forward": float(rec.train_steps if mat_step else 0), "backward": 0.0}}
    return rec


def ladder_records(tasks: Sequence[str] = ("rte", "cola"), seeds: Sequence[int] = (1, 2, 3, 4, 5),
                   rungs: Sequence[str] = RUNG_NAMES, model: str = "minilm") -> Iterator[TrialRecord]:
    """Synthetic records of the component ladder: every rung x task x seed."""
    for rung, task, seed in itertools.product(rungs, tasks, seeds):
        yield make_ladder_record(rung, task, seed, model=model)


def write_records(records: Iterator[TrialRecord] | Sequence[TrialRecord],
    out_dir: str | os.PathLike[str]) -> int:
    """Write each record to ``out_dir/<trial_id>/trial.json`` (plain writes: test data); return the count."""
    out = Path(out_dir)
    n = 0
    for rec in records:
        d = out / rec.trial_id
        d.mkdir(parents=True, exist_ok=True)
        (d / RECORD_FILE).write_text(json.dumps(rec.to_dict()), encoding="utf-8")
        n += 1
    return n
