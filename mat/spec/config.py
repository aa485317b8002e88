"""Frozen configuration dataclasses and the NNI parameter merge (the command line is :mod:`mat.cli`).

Three groups, kept apart as the accelerate examples do: :class:`RunArgs`, run settings (task, model, paths,
device, eval cadence; flags in NNI's ``trialCommand``, never searched); :class:`TrainArgs`, searchable
hyperparameters common to every method; one ``*Args`` per method, the method's own hyperparameters, in
:mod:`mat.spec.methods` with the rest of the method's spec.

Every field carries ``metadata={"help": ..., "range": (lo, hi) | "choices": (...)}`` (:mod:`mat.spec.fields`);
``__post_init__`` checks it, so an out-of-range value fails when the config is built, with the field name and
the allowed range in the message. :func:`apply_overrides` merges NNI parameters into a :class:`TrialConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from mat.spec.fields import INF as _INF
from mat.spec.fields import Checked as _Checked
from mat.spec.fields import arg as _f
from mat.spec.fields import type_name as _type_name
from mat.spec.ladder import RUNG_KEY, rung_settings
from mat.spec.methods import DEFAULT_METHOD, METHOD_ARGS, METHOD_SPECS, MethodSpec, TrainDefaults
from mat.spec.naming import FieldError, did_you_mean
from mat.spec.tasks import TASKS, check_select_metric

DECAY_SCOPES: tuple[str, ...] = ("all", "no_bias_norm")  # which parameters decay (mat.optim.decay_groups)


# --------------------------------------------------------------------------------------------- run


@dataclass(frozen=True)
class RunArgs(_Checked):
    """Run settings: what to train on, where to write, how often to evaluate. Not searched."""

    task: str = _f("rte", f"Task name: {' '.join(TASKS)}.")
    model: str = _f("minilm", "Hub id or local path of the pre-trained model; 'minilm' = the packaged "
        "all-MiniLM-L6-v2.")
    method: str = _f(DEFAULT_METHOD, "Training method.", choices=METHOD_SPECS)
    output_dir: str | None = _f(None, "Where trial.json, predictions and checkpoints go (default: "
        "$NNI_OUTPUT_DIR under NNI, else runs/<task>-<method>-seed<seed> in the current folder).")
    data_dir: str | None = _f(None, "Local data folder in the glue_data/anli layout, as `python -m mat.data "
        "prepare --out DIR` writes it (default: $MAT_DATA_DIR, else the Hugging Face Hub).")
    cache_dir: str | None = _f(None, "Cache for tokenized datasets (default: ~/.cache/mat_harness).")
    device: str = _f("auto", "auto (cuda if available), cpu or cuda.", choices=("auto", "cpu", "cuda"))
    precision: str = _f("auto", "auto: on CUDA bf16 (fp16 without bf16) unless the method's perturbation is "
        "below that format's resolution, then fp32; on CPU fp32. bf16/fp16: autocast as asked (CUDA or CPU), "
        "measured against the perturbation on the first batch. fp32: no autocast.",
        choices=("auto", "bf16", "fp16", "fp32"))
    max_length: int = _f(512, "Maximum tokens per example (longer inputs are truncated; batches are padded "
        "dynamically).", rng=(8, 4096))
    max_train_samples: int | None = _f(None, "Use only the first N training examples (as in run_glue).",
        rng=(1, 10**9))
    max_eval_samples: int | None = _f(None, "Use only the first N examples of each evaluation split.",
        rng=(1, 10**9))
    eval_times: int = _f(1, "Evaluations per epoch (the authors' knob); where they fall: --eval_schedule.",
        rng=(1, 10**6))
    eval_schedule: str = _f("per_epoch", "per_epoch: eval_times evenly spaced in each epoch, and one at the "
        "last step. authors: the authors' MAT.py, after batch j = k*e + 1 (k >= 1, 1-based, counted across "
        "epochs), e = batches per epoch // eval_times, and none at the end.",
        choices=("per_epoch", "authors"))
    select_metric: str = _f("score", "The dev metric that picks the best evaluation (the record's best): "
        "score (the task score, the mean of the task's metrics) or one metric of the task, e.g. accuracy "
        "(the authors' rule: their first metric).")
    eval_splits: str = _f("", "Comma-separated extra labelled splits to evaluate at each evaluation, e.g. "
        "'adv_validation' (AdvGLUE) or 'test_r1' (ANLI).")
    eval_batch_size: int = _f(64, "Batch size for evaluation.", rng=(1, 4096))
    predict: bool = _f(False, "Write test-set predictions in the GLUE submission format at the end (best "
        "weights).")
    diagnostics: bool = _f(False, "MAT: also report the consistency loss with delta = 0 (dropout-only), to "
        "see which term acts.")
    max_steps: int | None = _f(None, "Stop after this many optimizer steps (overrides epochs for the "
        "schedule).", rng=(1, 10**9))
    checkpoint_every: int = _f(0, "Write a resumable checkpoint every N steps (0: only on SIGTERM/SIGINT). A "
        "rerun into the same output dir resumes from it.", rng=(0, 10**9))
    checkpoint_store: str | None = _f(None, "Keep checkpoints in DIR/<key>/ instead of "
        "<output_dir>/checkpoints, the key a hash of the configuration, seed, code and torch/transformers "
        "versions: a later run of the same configuration in any output dir or NNI experiment resumes from "
        "them (bit for bit). The folder is "
        "deleted when the run succeeds. python -m trials.study run sets it.")
    save_model: bool = _f(False, "Save the final model and tokenizer to <output_dir>/model (safetensors) at "
        "the end.")
    num_workers: int = _f(0, "DataLoader worker processes.", rng=(0, 64))
    group_by_length: bool = _f(False, "Train on batches of similar length (mega-batches of 50 batches sorted "
        "by length, batch order shuffled by the seed, as HF Trainer): less padding, but other examples share "
        "a batch. Evaluation batches are always sorted by length.")
    num_threads: int = _f(0, "CPU threads of this trial (torch.set_num_threads). 0: $OMP_NUM_THREADS if set; "
        "under NNI, the machine's cores divided by the experiment's trialConcurrency; else torch's default "
        "(every core).", rng=(0, 4096))
    train_mix: str = _f("task", "Training data: the task's own train split, or (ANLI tasks) 'combined': SNLI "
        "+ MNLI + FEVER-NLI + ANLI R1-R3, the training set of the paper's ANLI runs (section 4.2).",
        choices=("task", "combined"))
    trial_id: str | None = _f(None, "Trial id written in the record (default: $NNI_TRIAL_JOB_ID under NNI, "
        "else the output dir name).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_select_metric(self.task, self.select_metric)
        if self.train_mix == "combined" and not self.task.strip().lower().startswith("anli"):
            raise ValueError(
                f"--train_mix combined is the ANLI training recipe; {self.task} trains on its own train "
                "split (use --train_mix task)"
            )


# ---------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainArgs(_Checked):
    """Searchable hyperparameters shared by every method."""

    learning_rate: float | None = _f(None, "Peak learning rate (MAT: = sampling_step_theta). Default per "
        "method (method_train_defaults): MAT 1e-5 (or its sampling_step_theta), the others 2e-5.",
        rng=(0.0, 1.0))
    epochs: float = _f(3.0, "Training epochs (fractions allowed).", rng=(0.0, 1000.0))
    batch_size: int = _f(32, "Training batch size.", rng=(1, 65536))
    seed: int = _f(42, "Random seed (python, numpy, torch, data order).", rng=(0, 2**32 - 1))
    warmup_ratio: float = _f(0.1, "Fraction of steps with linear warm-up (the authors' default 0.1).",
        rng=(0.0, 1.0))
    warmup_rounding: str = _f("floor", "Warm-up steps from warmup_ratio * total steps: floor (whole steps) "
        "or none (the fraction itself, as the authors' MAT.py passes it: SST-2 1052.5).",
        choices=("floor", "none"))
    weight_decay: float | None = _f(None, "Weight decay: decoupled for AdamW (adamw, MAT's adam), an L2 term "
        "for SGD and RMSprop (MAT's sgld, rmsprop). Default per method: MAT 0.01 with adam and 0 with "
        "sgld/rmsprop (the authors' torch defaults), the others 0.01.", rng=(0.0, 1.0))
    weight_decay_scope: str | None = _f(None, "Which parameters decay: all, or no_bias_norm (not biases and "
        "LayerNorm weights, the HF convention). Default per method: MAT all (the authors' "
        "optim(model.parameters())), the others no_bias_norm.", choices=DECAY_SCOPES)
    max_grad_norm: float | None = _f(None, "Gradient clipping norm before every optimizer step (0: off). "
        "Default per method: MAT 0 and R3F 0 (their references never clip), vanilla, FreeLB and SMART 1.0.",
        rng=(0.0, _INF))
    lr_scheduler_type: str = _f("linear", "transformers.get_scheduler schedule.",
        choices=("linear", "cosine", "constant", "constant_with_warmup", "polynomial"))
    adam_epsilon: float = _f(1e-8, "Epsilon of AdamW / the adam sampler.", rng=(0.0, 1.0))


# The TrainArgs fields whose default depends on the method (None in TrainArgs: "the method's default").
PER_METHOD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrainDefaults))


# Run settings that change a trial's result (the rest, e.g. output_dir or device, do not): recorded with the
# parameters, part of an analysis's configuration key and of a checkpoint's fingerprint.
RESULT_RUN_KEYS: tuple[str, ...] = ("max_train_samples", "max_eval_samples", "max_length", "max_steps",
    "eval_times", "eval_splits", "train_mix", "group_by_length", "eval_schedule", "select_metric")


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial runs with. ``train`` is resolved: no field of :data:`PER_METHOD_FIELDS` is None.

    A per-method field left None takes :func:`method_train_defaults` for ``run.method`` and ``method``;
    ``defaulted`` remembers which fields did (with the value), so a later :func:`apply_overrides` (say NNI
    switching MAT's ``sampler`` from adam to sgld) re-derives them instead of keeping a default that belonged
    to other settings. ``defaulted`` survives ``dataclasses.replace``; a field whose value was changed since
    (it no longer equals the recorded default) counts as given.
    """

    run: RunArgs
    train: TrainArgs
    method: _Checked  # the method's argument dataclass (METHOD_SPECS[run.method].args)
    defaulted: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)
    rung: str | None = None  # the component-ladder rung (mat.spec.ladder) the NNI parameters chose, if any

    def __post_init__(self) -> None:
        spec = METHOD_SPECS[self.run.method]
        expected = spec.args
        if not isinstance(self.method, expected):
            raise ValueError(f"method args {type(self.method).__name__} do not match --method "
                f"{self.run.method} ({expected.__name__})")
        previous = dict(self.defaulted)
        unset = [n for n in PER_METHOD_FIELDS
                 if getattr(self.train, n) is None or getattr(self.train, n) == previous.get(n, None)]
        cleared: dict[str, Any] = {n: None for n in unset}
        given = dataclasses.replace(self.train, **cleared)
        defaults = method_train_defaults(spec, self.method, given)
        used = {n: defaults[n] for n in unset}
        object.__setattr__(self, "train", dataclasses.replace(given, **used))
        object.__setattr__(self, "defaulted", tuple(sorted(used.items())))

    def given_train(self) -> TrainArgs:
        """``train`` with the fields that took the method's default set back to None (what was asked for)."""
        cleared: dict[str, Any] = {k: None for k, _ in self.defaulted}
        return dataclasses.replace(self.train, **cleared)

    def run_settings(self) -> dict[str, Any]:
        """The run settings that change what is trained or measured (:data:`RESULT_RUN_KEYS`): the record's
        ``run``."""
        return {k: getattr(self.run, k) for k in RESULT_RUN_KEYS}

    def params(self) -> dict[str, Any]:
        """Every resolved hyperparameter (train + method, and ``rung`` if set), as written in the record's
        ``params``."""
        return {**dataclasses.asdict(self.train), **dataclasses.asdict(self.method),
            **({RUNG_KEY: self.rung} if self.rung else {})}


def resolve_learning_rate(spec: MethodSpec[Any], train: TrainArgs, args: Any) -> float:
    """The learning rate: ``learning_rate``, or the method's other name for it (``spec.learning_rate_field``,
    MAT's ``sampling_step_theta``), or the method's default (:mod:`mat.spec.methods`).

    Raises:
        ValueError: both are given and differ.
    """
    name = spec.learning_rate_field
    theta = getattr(args, name) if name else None
    lr = train.learning_rate
    if lr is not None and theta is not None and not math.isclose(lr, theta, rel_tol=1e-9):
        raise ValueError(
            f"learning_rate={lr} and {name}={theta} disagree: they are the same quantity "
            f"({spec.name}'s learning rate under two names); give one of them"
        )
    default = spec.train_defaults(args).learning_rate
    return float(lr if lr is not None else theta if theta is not None else default)


def method_train_defaults(spec: MethodSpec[Any], args: Any, train: TrainArgs | None = None) -> dict[str, Any]:
    """The default of each of :data:`PER_METHOD_FIELDS` for the method ``spec`` with arguments ``args``: its
    ``train_defaults`` (each with its source in :mod:`mat.spec.methods`), the learning rate resolved by
    :func:`resolve_learning_rate`.

    Args:
        spec: the method.
        args: the method's argument dataclass (MAT's ``sampler`` and ``sampling_step_theta`` matter).
        train: the given training arguments (for the learning rate's agreement with ``sampling_step_theta``).

    Raises:
        ValueError: ``learning_rate`` and ``sampling_step_theta`` both given and different.
    """
    lr = resolve_learning_rate(spec, train if train is not None else TrainArgs(), args)
    return {**dataclasses.asdict(spec.train_defaults(args)), "learning_rate": lr}


# ------------------------------------------------------------------------------------ NNI overrides

ALIASES: Mapping[str, tuple[str, ...]] = {
    # The paper tunes one K for both loops (Table 7); this key sets both fields.
    "sampling_times": ("sampling_times_delta", "sampling_times_theta"),
    # Algorithm 2 has one beta for the sampling EMAs and the final mix (line 12); this key sets both.
    "beta": ("beta_s", "beta_p"),
}


def searchable_keys(method: str) -> list[str]:
    """The keys :func:`apply_overrides` accepts for ``method``."""
    keys = [f.name for f in fields(TrainArgs)] + [f.name for f in fields(METHOD_ARGS[method])]
    keys += [a for a, targets in ALIASES.items() if all(t in keys for t in targets)]
    return keys + [RUNG_KEY]


def _coerce(f: dataclasses.Field[Any], value: Any) -> Any:
    ftype = _type_name(f)
    if ftype.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if ftype.startswith("int") and isinstance(value, float) and value.is_integer():
        return int(value)  # NNI's quniform/randint can send 5.0
    if ftype.startswith("int") and isinstance(value, float):
        raise FieldError(f.name, value, "must be an integer")
    return value


def apply_overrides(cfg: TrialConfig, params: Mapping[str, Any]) -> TrialConfig:
    """Merge NNI parameters into ``cfg`` and return a new, validated config.

    Int values for float fields are coerced to float, integral floats for int fields to int. MAT's
    ``sampling_times`` sets both ``sampling_times_delta`` and ``sampling_times_theta``; its
    ``sampling_step_theta`` and ``learning_rate`` are kept equal (giving one sets both). Fields of
    :data:`PER_METHOD_FIELDS` that ``cfg`` took from the method's defaults are derived again for the merged
    config (MAT with ``sampler`` sgld sent: no weight decay), unless ``params`` sets them. ``rung`` applies
    a rung of :mod:`mat.spec.ladder` last (``vanilla``/``r3f`` switch the method, keeping the training
    settings).

    Raises:
        ValueError: unknown key (the message names it, the closest valid key and all valid keys), wrong
            type, or a value out of range (the field and the allowed range); a bad rung
            (:mod:`mat.spec.ladder`).
    """
    valid = searchable_keys(cfg.run.method)
    expanded: dict[str, Any] = {}
    rung = params.get(RUNG_KEY)
    for key, value in ((k, v) for k, v in params.items() if k != RUNG_KEY):
        if key not in valid:
            raise ValueError(f"unknown parameter {key!r} for method "
                f"{cfg.run.method}.{did_you_mean(key, valid)} Valid keys: {', '.join(valid)}")
        for target in ALIASES.get(key, (key,)):
            expanded[target] = value
    groups: dict[str, dict[str, Any]] = {"train": {}, "method": {}}
    for group in groups:
        obj = getattr(cfg, group)
        for f in fields(obj):
            if f.name in expanded:
                groups[group][f.name] = _coerce(f, expanded[f.name])
    # the method defaults are derived anew for the merged config
    train, method = cfg.given_train(), cfg.method
    mparams = groups["method"]
    tparams = groups["train"]
    # learning_rate and the method's name for it (MAT's sampling_step_theta) are one quantity: an override of
    # either moves both.
    lr_field = METHOD_SPECS[cfg.run.method].learning_rate_field
    if lr_field:
        if "learning_rate" in tparams and lr_field not in mparams:
            mparams[lr_field] = tparams["learning_rate"]
        elif lr_field in mparams and "learning_rate" not in tparams:
            tparams["learning_rate"] = mparams[lr_field]
    out = TrialConfig(run=cfg.run, train=dataclasses.replace(train, **tparams),
        method=dataclasses.replace(method, **mparams), rung=cfg.rung)
    if rung is None:
        return out
    name, args = rung_settings(rung, out.run.method, dataclasses.asdict(out.method), expanded)
    # another method keeps the resolved training settings
    kept = out.defaulted if name == out.run.method else ()
    return TrialConfig(run=dataclasses.replace(out.run, method=name), train=out.train,
        method=METHOD_ARGS[name](**args), defaulted=kept, rung=rung.strip().lower())
