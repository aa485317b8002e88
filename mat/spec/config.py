"""Frozen configuration dataclasses and the NNI parameter merge (the command line is :mod:`mat.cli`).

Three groups, kept apart as the accelerate examples do: :class:`RunArgs`, run settings (task, model, paths,
device, eval cadence; flags in NNI's ``trialCommand``, never searched); :class:`TrainArgs`, searchable
hyperparameters common to every method; one ``*Args`` per method (:class:`MATArgs`, ...), the method's own
hyperparameters, named as the method's authors name their flags so published configs port 1:1.

Every field carries ``metadata={"help": ..., "range": (lo, hi) | "choices": (...)}``; ``__post_init__``
checks it, so an out-of-range value fails when the config is built, with the field name and the allowed
range in the message. :func:`apply_overrides` merges NNI parameters into a :class:`TrialConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from mat.spec.ladder import RUNG_KEY, rung_settings
from mat.spec.naming import FieldError, did_you_mean
from mat.spec.tasks import check_select_metric

_INF = math.inf


def _f(default: Any, help: str, rng: tuple[float, float] | None = None, choices: Sequence[Any] | None = None) -> Any:
    meta: dict[str, Any] = {"help": help}
    if rng is not None:
        meta["range"] = rng
        meta["help"] = f"{help} Allowed: [{rng[0]}, {rng[1]}]."
    if choices is not None:
        meta["choices"] = tuple(choices)
    return field(default=default, metadata=meta)


class _Checked:
    """Mixin: validate every field's type, range and choices after construction."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            _check_field(f, value)


def _type_name(f: dataclasses.Field[Any]) -> str:
    """'float', 'int | None'...: the annotation as text (HfArgumentParser resolves it in place)."""
    t = f.type
    return t if isinstance(t, str) else getattr(t, "__name__", None) or str(t).replace("typing.", "")


def _check_field(f: dataclasses.Field[Any], value: Any) -> None:
    if value is None:
        if "None" in _type_name(f):
            return
        raise FieldError(f.name, value, "must be set")
    rng = f.metadata.get("range")
    choices = f.metadata.get("choices")
    ftype = _type_name(f)
    if ftype.startswith("bool"):
        if not isinstance(value, bool):
            raise FieldError(f.name, value, "must be true or false")
        return
    if ftype.startswith(("int", "float")):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(f.name, value, f"must be a number, not a {type(value).__name__}")
        if not math.isfinite(value):
            raise FieldError(f.name, value, "must be finite")
        if rng is not None and not (rng[0] <= value <= rng[1]):
            raise FieldError(f.name, value, f"is out of range [{rng[0]}, {rng[1]}]")
    if choices is not None and value not in choices:
        raise FieldError(f.name, value, f"is not allowed: choose one of {list(choices)}")


# --------------------------------------------------------------------------------------------- run


@dataclass(frozen=True)
class RunArgs(_Checked):
    """Run settings: what to train on, where to write, how often to evaluate. Not searched."""

    task: str = _f("rte", "Task name: cola sst2 mrpc stsb qqp mnli qnli rte wnli anli_r1 anli_r2 anli_r3.")
    model: str = _f("minilm", "Hub id or local path of the pre-trained model; 'minilm' = the packaged all-MiniLM-L6-v2.")
    method: str = _f("mat", "Training method.", choices=("vanilla", "mat", "freelb", "smart", "r3f"))
    output_dir: str | None = _f(None, "Where trial.json, predictions and checkpoints go (default: $NNI_OUTPUT_DIR under NNI, else runs/<task>-<method>-seed<seed> in the current folder).")
    data_dir: str | None = _f(None, "Local data folder in the glue_data/anli layout, as `python -m mat.data prepare --out DIR` writes it (default: $MAT_DATA_DIR, else the Hugging Face Hub).")
    cache_dir: str | None = _f(None, "Cache for tokenized datasets (default: ~/.cache/mat_harness).")
    device: str = _f("auto", "auto (cuda if available), cpu or cuda.", choices=("auto", "cpu", "cuda"))
    precision: str = _f("auto", "auto: on CUDA bf16 (fp16 without bf16) unless the method's perturbation is below that format's resolution, then fp32; on CPU fp32. bf16/fp16: autocast as asked (CUDA or CPU), measured against the perturbation on the first batch. fp32: no autocast.", choices=("auto", "bf16", "fp16", "fp32"))
    max_length: int = _f(512, "Maximum tokens per example (longer inputs are truncated; batches are padded dynamically).", rng=(8, 4096))
    max_train_samples: int | None = _f(None, "Use only the first N training examples (as in run_glue).", rng=(1, 10**9))
    max_eval_samples: int | None = _f(None, "Use only the first N examples of each evaluation split.", rng=(1, 10**9))
    eval_times: int = _f(1, "Evaluations per epoch (the authors' knob); where they fall: --eval_schedule.", rng=(1, 10**6))
    eval_schedule: str = _f("per_epoch", "per_epoch: eval_times evenly spaced in each epoch, and one at the last step. authors: the authors' MAT.py, after batch j = k*e + 1 (k >= 1, 1-based, counted across epochs), e = batches per epoch // eval_times, and none at the end.", choices=("per_epoch", "authors"))
    select_metric: str = _f("score", "The dev metric that picks the best evaluation (the record's best): score (the task score, the mean of the task's metrics) or one metric of the task, e.g. accuracy (the authors' rule: their first metric).")
    eval_splits: str = _f("", "Comma-separated extra labelled splits to evaluate at each evaluation, e.g. 'adv_validation' (AdvGLUE) or 'test_r1' (ANLI).")
    eval_batch_size: int = _f(64, "Batch size for evaluation.", rng=(1, 4096))
    predict: bool = _f(False, "Write test-set predictions in the GLUE submission format at the end (best weights).")
    diagnostics: bool = _f(False, "MAT: also report the consistency loss with delta = 0 (dropout-only), to see which term acts.")
    max_steps: int | None = _f(None, "Stop after this many optimizer steps (overrides epochs for the schedule).", rng=(1, 10**9))
    checkpoint_every: int = _f(0, "Write a resumable checkpoint every N steps (0: only on SIGTERM/SIGINT). A rerun into the same output dir resumes from it.", rng=(0, 10**9))
    save_model: bool = _f(False, "Save the final model and tokenizer to <output_dir>/model (safetensors) at the end.")
    num_workers: int = _f(0, "DataLoader worker processes.", rng=(0, 64))
    group_by_length: bool = _f(False, "Train on batches of similar length (mega-batches of 50 batches sorted by length, batch order shuffled by the seed, as HF Trainer): less padding, but other examples share a batch. Evaluation batches are always sorted by length.")
    num_threads: int = _f(0, "CPU threads of this trial (torch.set_num_threads). 0: $OMP_NUM_THREADS if set; under NNI, the machine's cores divided by the experiment's trialConcurrency; else torch's default (every core).", rng=(0, 4096))
    train_mix: str = _f("task", "Training data: the task's own train split, or (ANLI tasks) 'combined': SNLI + MNLI + FEVER-NLI + ANLI R1-R3, the training set of the paper's ANLI runs (section 4.2).", choices=("task", "combined"))
    trial_id: str | None = _f(None, "Trial id written in the record (default: $NNI_TRIAL_JOB_ID under NNI, else the output dir name).")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_select_metric(self.task, self.select_metric)
        if self.train_mix == "combined" and not self.task.strip().lower().startswith("anli"):
            raise ValueError(
                f"--train_mix combined is the ANLI training recipe; {self.task} trains on its own train split (use --train_mix task)"
            )


# ---------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainArgs(_Checked):
    """Searchable hyperparameters shared by every method."""

    learning_rate: float | None = _f(None, "Peak learning rate (MAT: = sampling_step_theta). Default per method (method_train_defaults): MAT 1e-5 (or its sampling_step_theta), the others 2e-5.", rng=(0.0, 1.0))
    epochs: float = _f(3.0, "Training epochs (fractions allowed).", rng=(0.0, 1000.0))
    batch_size: int = _f(32, "Training batch size.", rng=(1, 65536))
    seed: int = _f(42, "Random seed (python, numpy, torch, data order).", rng=(0, 2**32 - 1))
    warmup_ratio: float = _f(0.1, "Fraction of steps with linear warm-up (the authors' default 0.1).", rng=(0.0, 1.0))
    warmup_rounding: str = _f("floor", "Warm-up steps from warmup_ratio * total steps: floor (whole steps) or none (the fraction itself, as the authors' MAT.py passes it: SST-2 1052.5).", choices=("floor", "none"))
    weight_decay: float | None = _f(None, "Weight decay: decoupled for AdamW (adamw, MAT's adam), an L2 term for SGD and RMSprop (MAT's sgld, rmsprop). Default per method: MAT 0.01 with adam and 0 with sgld/rmsprop (the authors' torch defaults), the others 0.01.", rng=(0.0, 1.0))
    weight_decay_scope: str | None = _f(None, "Which parameters decay: all, or no_bias_norm (not biases and LayerNorm weights, the HF convention). Default per method: MAT all (the authors' optim(model.parameters())), the others no_bias_norm.", choices=("all", "no_bias_norm"))
    max_grad_norm: float | None = _f(None, "Gradient clipping norm before every optimizer step (0: off). Default per method: MAT 0 and R3F 0 (their references never clip), vanilla, FreeLB and SMART 1.0.", rng=(0.0, _INF))
    lr_scheduler_type: str = _f("linear", "transformers.get_scheduler schedule.", choices=("linear", "cosine", "constant", "constant_with_warmup", "polynomial"))
    adam_epsilon: float = _f(1e-8, "Epsilon of AdamW / the adam sampler.", rng=(0.0, 1.0))


DEFAULT_LEARNING_RATE = 2e-5  # vanilla, FreeLB, SMART, R3F
MAT_LEARNING_RATE = 1e-5  # the authors' --sampling_step_theta default and all six BEST_LOGs
# The TrainArgs fields whose default depends on the method (None in TrainArgs: "the method's default").
PER_METHOD_FIELDS: tuple[str, ...] = ("learning_rate", "weight_decay", "weight_decay_scope", "max_grad_norm")


# ----------------------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class VanillaArgs(_Checked):
    """Plain fine-tuning: no method hyperparameters."""


@dataclass(frozen=True)
class MATArgs(_Checked):
    """MAT (Algorithm 2), with the authors' flag names (Charles-Zhong/MAT ``MAT.py``, ``utils/argparse.py``).

    The defaults are the authors' best CoLA/BERT-base run (``BEST_LOGs/CoLA_bert-base-uncased_*.log``: K_θ 10,
    K_δ 5, γ_δ 1e-3, β 0.3/0.3, Adam, randn init 1e-5, max norm 1e-5), with noise ratio 0.1 and λ 1. The
    training settings around the step are the authors' too (:func:`method_train_defaults`): γ_θ 1e-5, no
    gradient clipping, and their optimizer set-up ``optim(model.parameters(), lr)``: AdamW's own decay 0.01 on
    every parameter for ``adam``, no decay for ``sgld`` and ``rmsprop``.
    """

    sampling_times_delta: int = _f(5, "K_delta: SGLD steps of the perturbation delta per batch.", rng=(0, 10000))
    sampling_times_theta: int = _f(10, "K_theta: SGLD steps of the parameters per batch.", rng=(1, 10000))
    sampling_step_delta: float = _f(1e-3, "gamma_delta: step size of the delta ascent.", rng=(0.0, _INF))
    sampling_step_theta: float | None = _f(None, "gamma_theta: the learning rate of the theta steps; sets learning_rate (the two may not disagree).", rng=(0.0, 1.0))
    sampling_noise_ratio: float = _f(0.1, "Thermal noise epsilon = ratio * gamma (Langevin noise sqrt(2 gamma) * epsilon * xi).", rng=(0.0, _INF))
    lambda_s: float = _f(1.0, "lambda: weight of the consistency term R (symmetric KL; squared error for regression).", rng=(0.0, _INF))
    beta_s: float = _f(0.3, "beta: EMA coefficient inside the sampling loops (delta-bar, theta-bar).", rng=(0.0, 1.0))
    beta_p: float = _f(0.3, "beta_p: final mix theta_{t+1} = beta_p * theta_t + (1 - beta_p) * theta-bar.", rng=(0.0, 1.0))
    adv_init_type: str = _f("randn", "Initial delta on the real tokens: zero, rand (eps * U[0, 1), as the authors' torch.rand) or randn (eps * N(0, 1)).", choices=("zero", "rand", "randn"))
    adv_init_epsilon: float = _f(1e-5, "Scale of the initial delta.", rng=(0.0, _INF))
    adv_max_norm: float = _f(1e-5, "Per-example L-inf bound on delta: an example above it is rescaled onto it, after the noise (0: unbounded).", rng=(0.0, _INF))
    sampler: str = _f("adam", "Preconditioner of the theta sampler: sgld (torch.optim.SGD), rmsprop (RMSprop) or adam (AdamW).", choices=("sgld", "rmsprop", "adam"))
    consistency_reduction: str = _f("mean", "l_s over the batch on regression (STS-B): mean (lambda weighs it as it weighs the batch-mean KL) or sum (the authors' MSELoss(reduction='sum'): at one lambda a term batch_size times larger). Classification's KL is a batch mean either way.", choices=("mean", "sum"))
    delta_update: str = _f("normalized", "delta ascent direction: normalized (g / ||g||_inf per example, the authors' code) or raw (gamma * g, paper eq. 11).", choices=("normalized", "raw"))


@dataclass(frozen=True)
class FreeLBArgs(_Checked):
    """FreeLB (Zhu et al., ICLR 2020), flag names of zhuchen03/FreeLB ``run_glue_freelb.py`` (--adv-steps ...).

    The script's own defaults (steps 1, lr 0, init 0) are vanilla training; the defaults here are in the range
    of its launch scripts, e.g. ``huggingface-transformers/launch/run_glue.sh`` (ALBERT SST-2: adv_lr 0.1,
    init_mag 0.6, max_norm 0, 2 steps; an earlier version of the line: init_mag 1.0, max_norm 0.6, 3 steps) and
    ``fairseq-RoBERTa/launch/FreeLB/sst-fp32-clip.sh`` (RoBERTa SST-2: adv_lr 0.1, init_mag 1, max_norm 0.6,
    2 steps). Training settings: the script's (AdamW, decay on all but biases and LayerNorm weights, gradient
    clipping at ``--max_grad_norm`` 1.0).
    """

    adv_steps: int = _f(2, "K: ascent steps on delta (K forward+backward passes); parameter gradients are averaged over them.", rng=(1, 1000))
    adv_init_mag: float = _f(1e-2, "Magnitude of the random initial delta on the real tokens (l2: U(-1,1) * mag / sqrt(tokens * hidden); linf: U(-mag, mag); 0: zero init).", rng=(0.0, _INF))
    adv_lr: float = _f(1e-1, "Step size of the delta ascent.", rng=(0.0, _INF))
    adv_max_norm: float = _f(0.0, "Radius of the delta ball (0: unbounded).", rng=(0.0, _INF))
    norm_type: str = _f("l2", "Norm of the ascent (g / ||g|| per example) and of the ball: l2 or linf (clamp per element).", choices=("l2", "linf"))


@dataclass(frozen=True)
class SMARTArgs(_Checked):
    """SMART (Jiang et al., ACL 2020): mt-dnn ``--adv_*`` flags plus the Bregman proximal term.

    ``adv_alpha`` weighs R_s as mt-dnn's ``SymKlCriterion`` does (``mt_dnn/loss.py``: each KL term's target
    distribution detached), so a value ports 1:1. Gradient clipping at 1.0 as mt-dnn's
    ``--global_grad_clipping`` default.
    """

    adv_alpha: float = _f(1.0, "lambda_s: weight of the smoothness regulariser R_s (0: off).", rng=(0.0, _INF))
    adv_k: int = _f(1, "T_x: ascent steps on the noisy input.", rng=(0, 1000))
    adv_step_size: float = _f(1e-3, "eta: ascent step size.", rng=(0.0, _INF))
    adv_noise_var: float = _f(1e-5, "sigma: scale of the initial noise N(0, sigma^2) on the embeddings (mt-dnn multiplies N(0, 1) by this value, despite its name).", rng=(0.0, _INF))
    adv_epsilon: float = _f(1e-5, "epsilon: radius of the perturbation ball in adv_p_norm (paper, Algorithm 1).", rng=(0.0, _INF))
    adv_p_norm: str = _f("inf", "Norm of the ascent normalisation and the ball: inf (g / max|g|), l2 or l1 (sign(g), as mt-dnn).", choices=("inf", "l2", "l1"))
    adv_norm_level: int = _f(0, "0: normalise (and project) per token, mt-dnn's default; 1: per example (sentence).", choices=(0, 1))
    bregman_mu: float = _f(1.0, "mu: weight of the momentum Bregman proximal term (0: off).", rng=(0.0, _INF))
    bregman_beta: float = _f(0.99, "beta: EMA coefficient of the teacher theta-tilde (theta-tilde <- beta * theta-tilde + (1 - beta) * theta after each step).", rng=(0.0, 1.0))


@dataclass(frozen=True)
class R3FArgs(_Checked):
    """R3F (Aghajanyan et al., ICLR 2021), flag names and defaults of fairseq ``examples/rxf`` (--eps --r3f-lambda --noise-type)."""

    noise_type: str = _f("uniform", "Noise on the embeddings: normal (N(0, eps^2)) or uniform (U(-eps, eps)).", choices=("normal", "uniform"))
    eps: float = _f(1e-5, "sigma: noise scale.", rng=(0.0, _INF))
    r3f_lambda: float = _f(1.0, "lambda: weight of the symmetric-KL consistency term.", rng=(0.0, _INF))


METHOD_ARGS: Mapping[str, type] = {
    "vanilla": VanillaArgs,
    "mat": MATArgs,
    "freelb": FreeLBArgs,
    "smart": SMARTArgs,
    "r3f": R3FArgs,
}


# Run settings that change a trial's result (the rest, e.g. output_dir or device, do not): recorded with the
# parameters, part of an analysis's configuration key and of a checkpoint's fingerprint.
RESULT_RUN_KEYS: tuple[str, ...] = ("max_train_samples", "max_eval_samples", "max_length", "max_steps", "eval_times", "eval_splits", "train_mix", "group_by_length", "eval_schedule", "select_metric")


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
    method: Any
    defaulted: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)
    rung: str | None = None  # the component-ladder rung (mat.spec.ladder) the NNI parameters chose, if any

    def __post_init__(self) -> None:
        expected = METHOD_ARGS[self.run.method]
        if not isinstance(self.method, expected):
            raise ValueError(f"method args {type(self.method).__name__} do not match --method {self.run.method} ({expected.__name__})")
        previous = dict(self.defaulted)
        unset = [n for n in PER_METHOD_FIELDS if getattr(self.train, n) is None or getattr(self.train, n) == previous.get(n, None)]
        cleared: dict[str, Any] = {n: None for n in unset}
        given = dataclasses.replace(self.train, **cleared)
        used = {n: v for n, v in method_train_defaults(self.run.method, self.method, given).items() if n in unset}
        object.__setattr__(self, "train", dataclasses.replace(given, **used))
        object.__setattr__(self, "defaulted", tuple(sorted(used.items())))

    def given_train(self) -> TrainArgs:
        """``train`` with the fields that took the method's default set back to None (what was asked for)."""
        cleared: dict[str, Any] = {k: None for k, _ in self.defaulted}
        return dataclasses.replace(self.train, **cleared)

    def run_settings(self) -> dict[str, Any]:
        """The run settings that change what is trained or measured (:data:`RESULT_RUN_KEYS`): the record's ``run``."""
        return {k: getattr(self.run, k) for k in RESULT_RUN_KEYS}

    def params(self) -> dict[str, Any]:
        """Every resolved hyperparameter (train + method, and ``rung`` if set), as written in the record's ``params``."""
        return {**dataclasses.asdict(self.train), **dataclasses.asdict(self.method), **({RUNG_KEY: self.rung} if self.rung else {})}


def resolve_learning_rate(train: TrainArgs, method: Any) -> float:
    """The learning rate: ``learning_rate``, or MAT's ``sampling_step_theta``, or the method's default
    (MAT :data:`MAT_LEARNING_RATE` 1e-5, the others :data:`DEFAULT_LEARNING_RATE` 2e-5).

    Raises:
        ValueError: both are given and differ.
    """
    theta, lr = getattr(method, "sampling_step_theta", None), train.learning_rate
    if lr is not None and theta is not None and not math.isclose(lr, theta, rel_tol=1e-9):
        raise ValueError(
            f"learning_rate={lr} and sampling_step_theta={theta} disagree: they are the same quantity "
            "(the theta sampler's step size); give one of them"
        )
    default = MAT_LEARNING_RATE if isinstance(method, MATArgs) else DEFAULT_LEARNING_RATE
    return float(lr if lr is not None else theta if theta is not None else default)


def method_train_defaults(method: str, args: Any, train: TrainArgs | None = None) -> dict[str, Any]:
    """The default of each of :data:`PER_METHOD_FIELDS` for ``method`` with arguments ``args``.

    * ``mat``: the authors' set-up (Charles-Zhong/MAT ``MAT.py``: ``optim(model.parameters(),
      lr=args.sampling_step_theta)``, then ``loss_sum.backward(); optimizer.step()``, no clipping):
      learning rate 1e-5 (``utils/argparse.py`` and all six ``BEST_LOGs``), no clipping, decay on every
      parameter at the optimizer's torch default: AdamW 0.01 for ``adam``, 0 for SGD (``sgld``) and RMSprop.
    * ``r3f``: fairseq ``examples/rxf/README.md`` trains with ``--clip-norm 0.0``: no clipping.
    * ``vanilla``, ``freelb``, ``smart``: clipping at 1.0 (BERT's ``optimization.py``
      ``clip_by_global_norm(clip_norm=1.0)``, ``run_glue_freelb.py --max_grad_norm`` 1.0, mt-dnn
      ``--global_grad_clipping`` 1.0).
    * all but MAT: learning rate 2e-5, decay 0.01 on all but biases and LayerNorm weights (BERT's
      ``AdamWeightDecayOptimizer(weight_decay_rate=0.01, exclude_from_weight_decay=["LayerNorm", "bias"])``).

    Args:
        method: the ``--method`` name.
        args: the method's argument dataclass (MAT's ``sampler`` and ``sampling_step_theta`` matter).
        train: the given training arguments (for the learning rate's agreement with ``sampling_step_theta``).

    Raises:
        ValueError: ``learning_rate`` and ``sampling_step_theta`` both given and different.
    """
    lr = resolve_learning_rate(train if train is not None else TrainArgs(), args)
    if method == "mat":
        decay = 0.01 if args.sampler == "adam" else 0.0  # torch.optim.AdamW's default; SGD and RMSprop have none
        return {"learning_rate": lr, "weight_decay": decay, "weight_decay_scope": "all", "max_grad_norm": 0.0}
    clip = 0.0 if method == "r3f" else 1.0
    return {"learning_rate": lr, "weight_decay": 0.01, "weight_decay_scope": "no_bias_norm", "max_grad_norm": clip}


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
    a rung of :mod:`mat.spec.ladder` last (``vanilla``/``r3f`` switch the method, keeping the training settings).

    Raises:
        ValueError: unknown key (the message names it, the closest valid key and all valid keys), wrong
            type, or a value out of range (the field and the allowed range); a bad rung (:mod:`mat.spec.ladder`).
    """
    valid = searchable_keys(cfg.run.method)
    expanded: dict[str, Any] = {}
    rung = params.get(RUNG_KEY)
    for key, value in ((k, v) for k, v in params.items() if k != RUNG_KEY):
        if key not in valid:
            raise ValueError(f"unknown parameter {key!r} for method {cfg.run.method}.{did_you_mean(key, valid)} Valid keys: {', '.join(valid)}")
        for target in ALIASES.get(key, (key,)):
            expanded[target] = value
    groups: dict[str, dict[str, Any]] = {"train": {}, "method": {}}
    for group in groups:
        obj = getattr(cfg, group)
        for f in fields(obj):
            if f.name in expanded:
                groups[group][f.name] = _coerce(f, expanded[f.name])
    train, method = cfg.given_train(), cfg.method  # the method defaults are derived anew for the merged config
    mparams, tparams = groups["method"], groups["train"]
    # learning_rate and sampling_step_theta are one quantity: an override of either moves both.
    if hasattr(method, "sampling_step_theta"):
        if "learning_rate" in tparams and "sampling_step_theta" not in mparams:
            mparams["sampling_step_theta"] = tparams["learning_rate"]
        elif "sampling_step_theta" in mparams and "learning_rate" not in tparams:
            tparams["learning_rate"] = mparams["sampling_step_theta"]
    out = TrialConfig(run=cfg.run, train=dataclasses.replace(train, **tparams), method=dataclasses.replace(method, **mparams), rung=cfg.rung)
    if rung is None:
        return out
    name, args = rung_settings(rung, out.run.method, dataclasses.asdict(out.method), expanded)
    kept = out.defaulted if name == out.run.method else ()  # another method keeps the resolved training settings
    return TrialConfig(run=dataclasses.replace(out.run, method=name), train=out.train, method=METHOD_ARGS[name](**args), defaulted=kept, rung=rung.strip().lower())
