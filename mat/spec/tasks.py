"""Task registry: one frozen :class:`TaskSpec` per GLUE / ANLI task.

Everything a trial or an analysis needs to know about a task lives in its spec: the Hub id, the local
file layout (the classic ``glue_data`` layout and ``anli_v1.0``), text fields, labels, metrics and split
names. Split and column names follow the Hub datasets (``nyu-mll/glue``, ``facebook/anli``), so a dataset
loaded from local files is interchangeable with one loaded from the Hub.

This module imports no torch (``analysis`` uses it on machines without torch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from mat.spec.naming import unknown_name


@dataclass(frozen=True)
class LocalFile:
    """One local file that holds one split.

    Attributes:
        path: path relative to the data dir, e.g. ``"glue/RTE/dev.tsv"``.
        fmt: ``"tsv"`` (first line is a header), ``"tsv_noheader"``, ``"jsonl"`` or ``"advglue"``
            (the AdvGLUE ``dev.json``: one object keyed by task).
        columns: ``{hub_column: source_column}``; for ``tsv_noheader`` the source column is the
            0-based position as a string. ``label`` is absent for unlabelled (test) files.
        n_columns: the number of fields every row must have (``tsv_noheader`` only; for ``tsv`` the
            header decides).
        advglue_key: the key in ``dev.json`` (``fmt == "advglue"`` only).
        index_column: source column holding the example index (``idx``); row number when None.
    """

    path: str
    fmt: str
    columns: Mapping[str, str]
    n_columns: int | None = None
    advglue_key: str | None = None
    index_column: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """Everything about one task. Columns and label ids equal the Hub dataset's.

    Attributes:
        name: our name (``rte``, ``anli_r1``...).
        dataset_path, dataset_name: the Hub dataset id and config (``nyu-mll/glue``, ``rte``).
        text_fields: one or two text columns fed to the tokenizer.
        label_names: class names in label-id order (empty for regression).
        num_labels: classes, or 1 for regression (STS-B).
        is_regression: STS-B only.
        metrics: metric keys of :mod:`mat.spec.metrics`; the task score is their mean.
        train_split, eval_splits, test_splits: Hub split names. ``eval_splits[0]`` is the dev set that
            model selection uses. Test splits of GLUE have label -1.
        extra_eval_splits: labelled extra evaluation sets (AdvGLUE dev, ANLI test) evaluated on request.
        local_files: ``{split: (LocalFile, ...)}``; the first file that exists is read.
        label_aliases: other spellings of labels in local files (ANLI ``e``/``n``/``c``).
        glue_dir: the folder name in ``glue_data`` (``SST-2``); None for non-GLUE tasks.
        submission_files: ``{split: file name}`` for the GLUE test server.
        submission_labels: the server wants label names, not ids, in the task's files (MNLI, QNLI, RTE).
        labelled_test: test files carry gold labels (ANLI).
        label: the display name in tables and figures (``SST-2``, ``ANLI-R1``).
    """

    name: str
    dataset_path: str
    dataset_name: str | None
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    num_labels: int
    is_regression: bool
    metrics: tuple[str, ...]
    train_split: str
    eval_splits: tuple[str, ...]
    test_splits: tuple[str, ...]
    extra_eval_splits: tuple[str, ...] = ()
    local_files: Mapping[str, tuple[LocalFile, ...]] = field(default_factory=dict)
    label_aliases: Mapping[str, str] = field(default_factory=dict)
    glue_dir: str | None = None
    submission_files: Mapping[str, str] = field(default_factory=dict)
    submission_labels: bool = False
    labelled_test: bool = False
    label: str = ""

    @property
    def dev_split(self) -> str:
        """The split used for model selection (the first eval split)."""
        return self.eval_splits[0]

    @property
    def all_splits(self) -> tuple[str, ...]:
        """Every split this task knows, train first."""
        return (self.train_split, *self.eval_splits, *self.test_splits, *self.extra_eval_splits)

    def label_id(self, value: str) -> int:
        """Map a label as written in a file to its id.

        Raises:
            ValueError: the value is not a label of this task.
        """
        value = value.strip()
        value = self.label_aliases.get(value, value)
        if value in self.label_names:
            return self.label_names.index(value)
        if value.lstrip("-").isdigit() and 0 <= int(value) < self.num_labels:
            return int(value)
        raise ValueError(
            f"label {value!r} is not one of {self.name}'s labels {list(self.label_names)} "
            f"(or their ids 0..{self.num_labels - 1})"
        )


GLUE_HUB = "nyu-mll/glue"
ANLI_HUB = "facebook/anli"
ADVGLUE = "advglue/dev.json"
_NLI3 = ("entailment", "neutral", "contradiction")
_NLI2 = ("entailment", "not_entailment")


def _tsv(path: str, index: str | None = "index", **columns: str) -> LocalFile:
    return LocalFile(path=path, fmt="tsv", columns=columns, index_column=index)


def _adv(key: str, *fields: str) -> LocalFile:
    cols = {f: f for f in (*fields, "label")}
    return LocalFile(path=ADVGLUE, fmt="advglue", columns=cols, advglue_key=key, index_column="idx")


def _glue(
    name: str,
    glue_dir: str,
    text_fields: tuple[str, ...],
    label_names: tuple[str, ...],
    metrics: tuple[str, ...],
    train: LocalFile,
    dev: LocalFile,
    test: LocalFile,
    adv: LocalFile | None = None,
    regression: bool = False,
    submission_labels: bool = False,
) -> TaskSpec:
    files: dict[str, tuple[LocalFile, ...]] = {"train": (train,), "validation": (dev,), "test": (test,)}
    extra: tuple[str, ...] = ()
    if adv is not None:
        files["adv_validation"] = (adv,)
        extra = ("adv_validation",)
    return TaskSpec(
        name=name,
        dataset_path=GLUE_HUB,
        dataset_name=name,
        text_fields=text_fields,
        label_names=label_names,
        num_labels=1 if regression else len(label_names),
        is_regression=regression,
        metrics=metrics,
        train_split="train",
        eval_splits=("validation",),
        test_splits=("test",),
        extra_eval_splits=extra,
        local_files=files,
        glue_dir=glue_dir,
        submission_files={"test": f"{glue_dir}.tsv"},
        submission_labels=submission_labels,
        label=glue_dir,
    )


def _mnli() -> TaskSpec:
    def mnli_tsv(split: str) -> LocalFile:
        cols = {"premise": "sentence1", "hypothesis": "sentence2"}
        if not split.startswith("test"):
            cols["label"] = "gold_label"
        return LocalFile(path=f"glue/MNLI/{split}.tsv", fmt="tsv", columns=cols, index_column="index")

    reduced = LocalFile(
        path="glue/MNLI/dev_matched.reduced.jsonl",
        fmt="jsonl",
        columns={"premise": "premise", "hypothesis": "hypothesis", "label": "label"},
    )
    return TaskSpec(
        name="mnli",
        dataset_path=GLUE_HUB,
        dataset_name="mnli",
        text_fields=("premise", "hypothesis"),
        label_names=_NLI3,
        num_labels=3,
        is_regression=False,
        metrics=("accuracy_m", "accuracy_mm"),
        train_split="train",
        eval_splits=("validation_matched", "validation_mismatched"),
        test_splits=("test_matched", "test_mismatched"),
        extra_eval_splits=("adv_validation_matched", "adv_validation_mismatched"),
        local_files={
            "train": (mnli_tsv("train"),),
            "validation_matched": (mnli_tsv("dev_matched"), reduced),
            "validation_mismatched": (mnli_tsv("dev_mismatched"),),
            "test_matched": (mnli_tsv("test_matched"),),
            "test_mismatched": (mnli_tsv("test_mismatched"),),
            "adv_validation_matched": (_adv("mnli", "premise", "hypothesis"),),
            "adv_validation_mismatched": (_adv("mnli-mm", "premise", "hypothesis"),),
        },
        glue_dir="MNLI",
        label="MNLI",
        submission_files={"test_matched": "MNLI-m.tsv", "test_mismatched": "MNLI-mm.tsv"},
        submission_labels=True,
    )


def _anli(r: int) -> TaskSpec:
    def jl(split: str) -> LocalFile:
        cols = {"premise": "context", "hypothesis": "hypothesis", "label": "label"}
        return LocalFile(path=f"anli/R{r}/{split}.jsonl", fmt="jsonl", columns=cols, index_column=None)

    return TaskSpec(
        name=f"anli_r{r}",
        dataset_path=ANLI_HUB,
        dataset_name=None,
        text_fields=("premise", "hypothesis"),
        label_names=_NLI3,
        num_labels=3,
        is_regression=False,
        metrics=("accuracy",),
        train_split=f"train_r{r}",
        eval_splits=(f"dev_r{r}",),
        test_splits=(f"test_r{r}",),
        local_files={f"train_r{r}": (jl("train"),), f"dev_r{r}": (jl("dev"),), f"test_r{r}": (jl("test"),)},
        label_aliases={"e": "entailment", "n": "neutral", "c": "contradiction"},
        label=f"ANLI-R{r}",
        labelled_test=True,
    )


def _build() -> dict[str, TaskSpec]:
    cola_cols = {"sentence": "3", "label": "1"}
    specs = [
        _glue(
            "cola", "CoLA", ("sentence",), ("unacceptable", "acceptable"), ("mcc",),
            LocalFile("glue/CoLA/train.tsv", "tsv_noheader", cola_cols, n_columns=4),
            LocalFile("glue/CoLA/dev.tsv", "tsv_noheader", cola_cols, n_columns=4),
            _tsv("glue/CoLA/test.tsv", sentence="sentence"),
        ),
        _glue(
            "sst2", "SST-2", ("sentence",), ("negative", "positive"), ("accuracy",),
            _tsv("glue/SST-2/train.tsv", None, sentence="sentence", label="label"),
            _tsv("glue/SST-2/dev.tsv", None, sentence="sentence", label="label"),
            _tsv("glue/SST-2/test.tsv", sentence="sentence"),
            adv=_adv("sst2", "sentence"),
        ),
        _glue(
            "mrpc", "MRPC", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("accuracy", "f1"),
            _tsv("glue/MRPC/train.tsv", None, sentence1="#1 String", sentence2="#2 String", label="Quality"),
            _tsv("glue/MRPC/dev.tsv", None, sentence1="#1 String", sentence2="#2 String", label="Quality"),
            _tsv("glue/MRPC/test.tsv", sentence1="#1 String", sentence2="#2 String"),
        ),
        _glue(
            "qqp", "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"),
            _tsv("glue/QQP/train.tsv", "id", question1="question1", question2="question2",
                label="is_duplicate"),
            _tsv("glue/QQP/dev.tsv", "id", question1="question1", question2="question2",
                label="is_duplicate"),
            _tsv("glue/QQP/test.tsv", "id", question1="question1", question2="question2"),
            adv=_adv("qqp", "question1", "question2"),
        ),
        _glue(
            "stsb", "STS-B", ("sentence1", "sentence2"), (), ("pearson", "spearman"),
            _tsv("glue/STS-B/train.tsv", sentence1="sentence1", sentence2="sentence2", label="score"),
            _tsv("glue/STS-B/dev.tsv", sentence1="sentence1", sentence2="sentence2", label="score"),
            _tsv("glue/STS-B/test.tsv", sentence1="sentence1", sentence2="sentence2"),
            regression=True,
        ),
        _mnli(),
        _glue(
            "qnli", "QNLI", ("question", "sentence"), _NLI2, ("accuracy",),
            _tsv("glue/QNLI/train.tsv", question="question", sentence="sentence", label="label"),
            _tsv("glue/QNLI/dev.tsv", question="question", sentence="sentence", label="label"),
            _tsv("glue/QNLI/test.tsv", question="question", sentence="sentence"),
            adv=_adv("qnli", "question", "sentence"), submission_labels=True,
        ),
        _glue(
            "rte", "RTE", ("sentence1", "sentence2"), _NLI2, ("accuracy",),
            _tsv("glue/RTE/train.tsv", sentence1="sentence1", sentence2="sentence2", label="label"),
            _tsv("glue/RTE/dev.tsv", sentence1="sentence1", sentence2="sentence2", label="label"),
            _tsv("glue/RTE/test.tsv", sentence1="sentence1", sentence2="sentence2"),
            adv=_adv("rte", "sentence1", "sentence2"), submission_labels=True,
        ),
        _glue(
            "wnli", "WNLI", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",),
            _tsv("glue/WNLI/train.tsv", sentence1="sentence1", sentence2="sentence2", label="label"),
            _tsv("glue/WNLI/dev.tsv", sentence1="sentence1", sentence2="sentence2", label="label"),
            _tsv("glue/WNLI/test.tsv", sentence1="sentence1", sentence2="sentence2"),
        ),
        _anli(1),
        _anli(2),
        _anli(3),
    ]
    return {s.name: s for s in specs}


TASKS: Mapping[str, TaskSpec] = _build()
GLUE_TASKS: tuple[str, ...] = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
ANLI_TASKS: tuple[str, ...] = ("anli_r1", "anli_r2", "anli_r3")

TASK_ORDER: tuple[str, ...] = tuple(TASKS)  # the order of tables and figures: GLUE as the paper, then ANLI


def get_task(name: str) -> TaskSpec:
    """Look a task up by name (case-insensitive; ``SST-2`` and ``sst-2`` also work).

    Raises:
        KeyError: unknown name; the message lists the valid names and the closest match.
    """
    key = name.strip().lower().replace("-", "")
    if key in TASKS:
        return TASKS[key]
    raise KeyError(unknown_name("task", name, TASKS))


def task_label(name: str) -> str:
    """The display name of a task (``sst2`` -> ``SST-2``); an unknown name is shown as given."""
    spec = TASKS.get(name)
    return spec.label if spec is not None else name


def sort_tasks(names: Iterable[str]) -> list[str]:
    """Distinct task names in :data:`TASK_ORDER` (unknown names last, alphabetically)."""
    order = {t: i for i, t in enumerate(TASK_ORDER)}
    return sorted(dict.fromkeys(names), key=lambda t: (order.get(t, len(order)), t))


def task_score(spec: TaskSpec, metrics: Mapping[str, float], *, partial: bool = False) -> float:
    """A task's score: the mean of its metrics (the paper's per-task score; MRPC = (acc + F1) / 2).

    The one scoring rule of the project: the training loop scores evaluations with it and ``analysis``
    scores records with it. Every metric of the task must be present and finite, so an MRPC record without
    F1 is never scored on accuracy alone.

    Args:
        spec: the task's spec (:func:`get_task`).
        metrics: ``{metric: value}`` on the 0-100 scale.
        partial: for published rows that print only some metrics (``86.7/-``): the known (present, finite)
            ones stand for the task, NaN when none is. Never for trial records.

    Raises:
        ValueError: a metric the task does not have; or (``partial=False``) a missing or non-finite metric,
            named in the message.
    """
    extra = sorted(set(metrics) - set(spec.metrics))
    if extra:
        raise ValueError(f"{spec.name}: metrics {extra} are not among the task's metrics "
            f"{list(spec.metrics)}")
    known = {m: float(metrics[m]) for m in spec.metrics
             if m in metrics and metrics[m] is not None and math.isfinite(float(metrics[m]))}
    if not partial:
        missing = [m for m in spec.metrics if m not in known]
        if missing:
            why = ", ".join(f"{m} ({'missing' if m not in metrics else metrics[m]})" for m in missing)
            raise ValueError(f"{spec.name}: cannot score without {why}; its score is the mean of "
                f"{list(spec.metrics)}")
    return sum(known.values()) / len(known) if known else math.nan


SELECT_SCORE = "score"  # --select_metric's default: the task score picks the best evaluation


def check_select_metric(task: str, name: str) -> None:
    """Check that ``name`` can pick a task's best evaluation: ``score`` (:func:`task_score`) or one of its
    metrics.

    Raises:
        ValueError: ``name`` is neither (the message lists the task's metrics), or the task is unknown.
    """
    if name == SELECT_SCORE:
        return
    spec = TASKS.get(task.strip().lower().replace("-", ""))
    if spec is None:
        raise ValueError(unknown_name("task", task, TASKS))
    if name not in spec.metrics:
        raise ValueError(f"--select_metric {name!r} is not a metric of {spec.name}: use {SELECT_SCORE} or "
            f"one of {list(spec.metrics)}")
