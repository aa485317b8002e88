"""Trial identity: what arm a trial belongs to; each trial once, each configuration and seed once, local
trials told apart.

**Arms.** An arm is what a study compares: a method, or a method's named variant when the record names one
(``params.arm``, which study runners set, else ``params.rung``, the component ladder's rung). The arm's name
is that variant's name (``sampling``, ``dropout_consistency``), else the method's (:func:`arm_name`). Each arm
is its own row in every table and plot; its *configurations* are its trials' other parameters (learning
rate, λ...), so the best configuration is chosen within an arm, never across arms.

A loaded trial has a *source* and a *content key*:

* source: an NNI trial is ``(experiment id, trial id)``, whichever file or store it was read from; a
  local record (no experiment id) is its trial id read from one folder;
* content key: ``(method, task, model, configuration, seed)``, the configuration including the run
  settings that change results (``analysis.tidy.RUN_KEYS``).

:func:`resolve` applies three rules, in order:

1. **Duplicates** (one trial loaded more than once: the same folder given twice, an NNI experiment given
   both by id and as a records folder, a copied record folder): the SUCCEEDED copy is kept, then the newest
   (the file's modification time), then the one loaded first; the others are listed as skipped.
2. **Repeats** (two SUCCEEDED trials with the same content key: a GridSearch repeat after an NNI
   resume, a rerun under a new trial id): counted once, the newest (then the one loaded first); the
   others are set aside and listed, never counted as another seed. Unfinished trials are never counted
   as seeds, so they stay in the status counts as they are.
3. **Labels**: local trials that share a trial id but are different trials (the layout
   ``runs/<method>/seed<k>/``, where every method's trial id is ``seed<k>``) are labelled with the end of
   their folder path (``mat/seed1``, ``vanilla/seed1``), so ``(experiment, trial)`` names one trial.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from mat.spec.ladder import RUNG_NAMES

LOCAL_EXPERIMENT = "local"
_SEP = "\x00"
ARM_KEYS = ("arm", "rung")  # parameters that name a method's variant, in order of precedence


def arm_name(method: str, params: Mapping[str, Any]) -> str:
    """The arm of a trial: its variant's name (``params.arm``, else ``params.rung``) where the record names
    one, else its method.

    >>> arm_name("mat", {"rung": "sampling", "lambda_s": 0.0})
    'sampling'
    >>> arm_name("mat", {"lambda_s": 3.0})
    'mat'
    """
    for key in ARM_KEYS:
        value = params.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return str(method)


def arm_order(names: Iterable[str]) -> list[str]:
    """Arms in display order: the component ladder's rungs in ladder order (``vanilla`` first, ``r3f`` last of
    them; :data:`mat.spec.ladder.RUNG_NAMES`), then the other arms alphabetically; each name once."""
    rank = {n: i for i, n in enumerate(RUNG_NAMES)}
    return sorted(dict.fromkeys(str(n) for n in names), key=lambda n: (rank.get(n, len(rank)), n))


@dataclass(frozen=True)
class Repeat:
    """A trial set aside because another trial has its content key (method, task, model, config, seed)."""

    method: str
    task: str
    model: str
    seed: str
    config: str
    kept: str
    kept_source: str
    kept_status: str
    repeat: str
    repeat_source: str
    repeat_status: str

    def message(self) -> str:
        """The warning text: both files, both trials, what they share."""
        return (f"repeat set aside: {self.repeat_source} (trial {self.repeat}, {self.repeat_status}) ran the "
                f"same method, task, model, configuration and seed ({self.method}, {self.task}, seed "
                f"{self.seed}) as {self.kept_source} (trial {self.kept}, {self.kept_status}); counted once")

    def as_tuple(self) -> tuple[str, ...]:
        """``(method, task, model, seed, kept, kept_source, kept_status, repeat, repeat_source,
        repeat_status)``."""
        return (self.method, self.task, self.model, self.seed, self.kept, self.kept_source, self.kept_status,
                self.repeat, self.repeat_source, self.repeat_status)


REPEAT_FIELDS = ("method", "task", "model", "seed", "kept", "kept_source", "kept_status", "repeat",
                 "repeat_source", "repeat_status")


@dataclass(frozen=True)
class Resolution:
    """What :func:`resolve` decided, per input trial (row of its ``trials`` argument).

    Attributes:
        keep: a bool per trial: kept in the frame.
        labels: the ``trial`` label per trial (the trial id, or its folder's end where ids collide).
        duplicates: ``(source, reason)`` of each extra copy of a trial (listed as skipped).
        repeats: each trial set aside as a repeat.
    """

    keep: np.ndarray
    labels: list[str]
    duplicates: list[tuple[str, str]]
    repeats: list[Repeat]


def content_keys(trials: pd.DataFrame) -> pd.Series:
    """``method, task, model, config, seed`` joined: equal for two runs of one configuration and seed."""
    parts = [trials[c].astype(str) for c in ("method", "task", "model", "config", "seed")]
    out = parts[0]
    for p in parts[1:]:
        out = out + _SEP + p
    return out


def _preference(trials: pd.DataFrame) -> np.ndarray:
    """Positions of ``trials`` best first: SUCCEEDED, then newest ``written``, then loaded first."""
    written = pd.to_numeric(trials["written"], errors="coerce").fillna(-np.inf).to_numpy(dtype=float)
    failed = (trials["status"] != "SUCCEEDED").to_numpy()
    return np.lexsort((np.arange(len(trials)), -written, failed))


def _suffix_labels(trial_id: str, folders: list[str]) -> list[str]:
    """The shortest ends of ``folders`` that tell them apart (``mat/seed1``); the trial id kept in front
    when it is not the folder's name."""
    parts = [PurePath(f).parts or (f,) for f in folders]
    longest = max(len(p) for p in parts)
    k = 1
    while k < longest and len({p[-k:] for p in parts}) < len(parts):
        k += 1
    ends = ["/".join(p[-k:]) for p in parts]
    return [e if p[-1] == trial_id else f"{trial_id} ({e})" for e, p in zip(ends, parts)]


def _labels(trials: pd.DataFrame, keep: np.ndarray) -> list[str]:
    labels = trials["trial"].astype(str).tolist()  # trials has a 0..n-1 index (resolve resets it)
    kept = trials[keep & (trials["experiment"] == LOCAL_EXPERIMENT).to_numpy()]
    shared = kept[kept["trial"].duplicated(keep=False)]  # only ids several kept trials share need a label
    for trial_id, g in shared.groupby("trial", sort=False):
        for pos, label in zip(g.index, _suffix_labels(str(trial_id), g["folder"].astype(str).tolist())):
            labels[int(pos)] = label
    return labels


def _repeat(kept: pd.Series, rep: pd.Series) -> Repeat:
    return Repeat(str(rep["method"]), str(rep["task"]), str(rep["model"]), str(rep["seed"]),
        str(rep["config"]),
                  str(kept["trial"]), str(kept["source"]), str(kept["status"]), str(rep["trial"]),
                  str(rep["source"]), str(rep["status"]))


def resolve(trials: pd.DataFrame) -> Resolution:
    """Apply the duplicate, repeat and label rules (module docstring) to the loaded trials.

    Args:
        trials: one row per loaded trial copy, in load order, with ``experiment, trial, method, task, model,
            seed, status, config, source`` and ``written`` (seconds since the epoch, NaN if unknown) and
            ``folder`` (the record's folder; may be empty for NNI trials).

    Returns:
        A :class:`Resolution` aligned with the rows of ``trials``.
    """
    n = len(trials)
    if n == 0:
        return Resolution(np.zeros(0, dtype=bool), [], [], [])
    trials = trials.reset_index(drop=True)
    content = content_keys(trials)
    local = trials["experiment"] == LOCAL_EXPERIMENT
    source = trials["experiment"].astype(str) + _SEP + trials["trial"].astype(str)
    ident = source.where(~local, source + _SEP + content).to_numpy()
    content_arr = content.to_numpy()
    order = _preference(trials)
    keep = np.zeros(n, dtype=bool)
    duplicates: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i in order:
        kept = first.setdefault(ident[i], i)
        if kept == i:
            keep[i] = True
            continue
        k = trials.iloc[kept]
        duplicates.append((str(trials.at[i, "source"]),
                           f"trial already loaded from another source ({k['source']}, {k['status']}); one "
                           "copy of a trial is kept: SUCCEEDED first, then the newest"))
    repeats: list[Repeat] = []
    seen: dict[str, int] = {}
    counted = (trials["seed"].notna() & (trials["status"] == "SUCCEEDED")).to_numpy()
    for i in order:
        if not keep[i] or not counted[i]:
            continue
        kept = seen.setdefault(content_arr[i], i)
        if kept != i:
            keep[i] = False
            repeats.append(_repeat(trials.iloc[kept], trials.iloc[i]))
    duplicates.sort(key=lambda d: d[0])
    return Resolution(keep, _labels(trials, keep), duplicates, repeats)
