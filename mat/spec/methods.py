"""The training methods' torch-free half: one :class:`MethodSpec` per method, in one registry.

A spec holds what the configuration, the command line, the precision guard and the optimizer need to know of
a method, without torch: its name, its argument dataclass (the method's own hyperparameters, named as the
method's authors name their flags so published configs port 1:1), the training settings it defaults to, the
largest element its embedding perturbation can have, and the optimizer it trains with. Its training step is
a class in ``mat/methods/`` registered for the spec (``@register_method(SPEC)``, :mod:`mat.methods.base`).

Every method list reads this registry: ``--method``'s choices, the NNI keys a method accepts, its training
defaults (:func:`mat.spec.config.method_train_defaults`), the precision guard and the optimizer. Adding a
method is its argument dataclass and its :func:`register_spec` entry here, and its module in ``mat/methods/``
(docs/design.md, "Adding a method").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from mat.spec.fields import INF, Checked, arg
from mat.spec.naming import unknown_name

A = TypeVar("A", bound=Checked)

ADAMW = "adamw"  # the optimizer of vanilla fine-tuning and the baselines (torch.optim.AdamW)
SAMPLERS: tuple[str, ...] = ("sgld", "rmsprop", "adam")  # MAT's θ samplers: SGD, RMSprop, AdamW
OPTIMIZER_NAMES: tuple[str, ...] = (ADAMW, *SAMPLERS)  # every name mat.optim.build_optimizer knows


@dataclass(frozen=True)
class TrainDefaults:
    """The training settings a method defaults to (``TrainArgs`` fields left None; a flag or an NNI
    parameter overrides each)."""

    learning_rate: float
    weight_decay: float
    weight_decay_scope: str
    max_grad_norm: float


# BERT's set-up, the baselines' default (google-research/bert optimization.py: AdamWeightDecayOptimizer with
# weight_decay_rate 0.01 and exclude_from_weight_decay=["LayerNorm", "bias"], clip_by_global_norm 1.0).
BERT_TRAINING = TrainDefaults(learning_rate=2e-5, weight_decay=0.01, weight_decay_scope="no_bias_norm",
    max_grad_norm=1.0)


def _no_perturbation(args: Any) -> float | None:
    return None


def _two_passes(args: Any) -> float:
    return 2.0  # one forward, one backward


def _adamw(args: Any) -> str:
    return ADAMW


@dataclass(frozen=True)
class MethodSpec(Generic[A]):
    """One training method, as the configuration sees it.

    Attributes:
        name: the ``--method`` value (lower case).
        args: the method's frozen argument dataclass (a :class:`~mat.spec.fields.Checked` dataclass).
        train_defaults: the training settings for given arguments (:class:`TrainDefaults`).
        perturbation_bound: the largest element the method's embedding perturbation can have for given
            arguments (None: it perturbs nothing); the precision guard compares it with a format's resolution.
        optimizer: the name of the optimizer it trains with (:data:`OPTIMIZER_NAMES`), for given arguments.
        learning_rate_field: a field of ``args`` that is the learning rate under another name (MAT's
            ``sampling_step_theta``): it and ``learning_rate`` are kept equal, and it sets the default.
        passes_per_step: training's forward plus backward passes per batch for given arguments (a study's
            cost estimate reads it; a backward counts as one pass).
    """

    name: str
    args: type[A]
    train_defaults: Callable[[A], TrainDefaults]
    perturbation_bound: Callable[[A], float | None] = _no_perturbation
    optimizer: Callable[[A], str] = _adamw
    learning_rate_field: str | None = None
    passes_per_step: Callable[[A], float] = _two_passes


_SPECS: dict[str, MethodSpec[Any]] = {}
METHOD_SPECS: Mapping[str, MethodSpec[Any]] = MappingProxyType(_SPECS)  # read-only and live, in entry order


def register_spec(spec: MethodSpec[A]) -> MethodSpec[A]:
    """Add ``spec`` to the registry and return it.

    Raises:
        ValueError: the name is taken or not lower case.
    """
    if spec.name in _SPECS or spec.name != spec.name.strip().lower():
        raise ValueError(f"method {spec.name!r} is already registered or not a lower-case name")
    _SPECS[spec.name] = spec
    return spec


def unregister_spec(name: str) -> None:
    """Remove a method from the registry (a test's own method, when the test ends)."""
    _SPECS.pop(name, None)


def get_method_spec(name: str) -> MethodSpec[Any]:
    """The spec registered as ``name`` (case-insensitive).

    Raises:
        KeyError: unknown name; the message lists the valid names and the closest match.
    """
    key = name.strip().lower()
    if key in _SPECS:
        return _SPECS[key]
    raise KeyError(unknown_name("method", name, _SPECS))


class _ArgsByName(Mapping[str, type]):
    """``{name: argument dataclass}`` over the registry, read-only and live."""

    def __getitem__(self, name: str) -> type:
        return _SPECS[name].args

    def __iter__(self) -> Iterator[str]:
        return iter(_SPECS)

    def __len__(self) -> int:
        return len(_SPECS)


METHOD_ARGS: Mapping[str, type] = _ArgsByName()


# ------------------------------------------------------------------------------------------ vanilla


@dataclass(frozen=True)
class VanillaArgs(Checked):
    """Plain fine-tuning: no method hyperparameters."""


VANILLA_SPEC = register_spec(MethodSpec("vanilla", VanillaArgs, train_defaults=lambda a: BERT_TRAINING))


# ---------------------------------------------------------------------------------------------- MAT


@dataclass(frozen=True)
class MATArgs(Checked):
    """MAT (Algorithm 2), with the authors' flag names (Charles-Zhong/MAT ``MAT.py``, ``utils/argparse.py``).

    The defaults are the authors' best CoLA/BERT-base run (``BEST_LOGs/CoLA_bert-base-uncased_*.log``: K_θ 10,
    K_δ 5, γ_δ 1e-3, β 0.3/0.3, Adam, randn init 1e-5, max norm 1e-5), with noise ratio 0.1 and λ 1. The
    training settings around the step are the authors' too (:func:`mat_training`): γ_θ 1e-5, no
    gradient clipping, and their optimizer set-up ``optim(model.parameters(), lr)``: AdamW's own decay 0.01 on
    every parameter for ``adam``, no decay for ``sgld`` and ``rmsprop``.
    """

    sampling_times_delta: int = arg(5, "K_delta: SGLD steps of the perturbation delta per batch.",
        rng=(0, 10000))
    sampling_times_theta: int = arg(10, "K_theta: SGLD steps of the parameters per batch.", rng=(1, 10000))
    sampling_step_delta: float = arg(1e-3, "gamma_delta: step size of the delta ascent.", rng=(0.0, INF))
    sampling_step_theta: float | None = arg(
        None, "gamma_theta: the learning rate of the theta steps; sets learning_rate (the two may not "
        "disagree).",
        rng=(0.0, 1.0))
    sampling_noise_ratio: float = arg(
        0.1, "Thermal noise epsilon = ratio * gamma (Langevin noise sqrt(2 gamma) * epsilon * xi).",
        rng=(0.0, INF))
    lambda_s: float = arg(
        1.0, "lambda: weight of the consistency term R (symmetric KL; squared error for regression).",
        rng=(0.0, INF))
    beta_s: float = arg(
        0.3, "beta: EMA coefficient inside the sampling loops (delta-bar, theta-bar).", rng=(0.0, 1.0))
    beta_p: float = arg(
        0.3, "beta_p: final mix theta_{t+1} = beta_p * theta_t + (1 - beta_p) * theta-bar.", rng=(0.0, 1.0))
    adv_init_type: str = arg(
        "randn", "Initial delta on the real tokens: zero, rand (eps * U[0, 1), as the authors' torch.rand) "
        "or randn (eps * N(0, 1)).", choices=("zero", "rand", "randn"))
    adv_init_epsilon: float = arg(1e-5, "Scale of the initial delta.", rng=(0.0, INF))
    adv_max_norm: float = arg(
        1e-5, "Per-example L-inf bound on delta: an example above it is rescaled onto it, after the noise "
        "(0: unbounded).", rng=(0.0, INF))
    sampler: str = arg(
        "adam", "Preconditioner of the theta sampler: sgld (torch.optim.SGD), rmsprop (RMSprop) or adam "
        "(AdamW).",
        choices=SAMPLERS)
    consistency_reduction: str = arg(
        "mean", "l_s over the batch on regression (STS-B): mean (lambda weighs it as it weighs the "
        "batch-mean KL) or sum (the authors' MSELoss(reduction='sum'): at one lambda a term batch_size times "
        "larger). Classification's KL is a batch mean either way.", choices=("mean", "sum"))
    delta_update: str = arg(
        "normalized", "delta ascent direction: normalized (g / ||g||_inf per example, the authors' code) or "
        "raw (gamma * g, paper eq. 11).", choices=("normalized", "raw"))


def mat_training(a: MATArgs) -> TrainDefaults:
    """The authors' set-up (Charles-Zhong/MAT ``MAT.py``: ``optim(model.parameters(),
    lr=args.sampling_step_theta)``, then ``loss_sum.backward(); optimizer.step()``, no clipping): learning
    rate 1e-5 (``utils/argparse.py`` and all six ``BEST_LOGs``), no clipping, decay on every parameter at the
    optimizer's torch default: AdamW 0.01 for ``adam``, 0 for SGD (``sgld``) and RMSprop."""
    decay = 0.01 if a.sampler == "adam" else 0.0  # torch.optim.AdamW's default; SGD and RMSprop have none
    return TrainDefaults(learning_rate=1e-5, weight_decay=decay, weight_decay_scope="all", max_grad_norm=0.0)


def mat_bound(a: MATArgs) -> float | None:
    """``adv_max_norm`` (L∞ per example), or with no bound ``adv_init_epsilon`` + K_δ·γ_δ (each normalised
    ascent step moves an element by at most γ_δ); none with λ = 0."""
    if a.lambda_s == 0:
        return None
    bound = (a.adv_max_norm if a.adv_max_norm > 0
             else a.adv_init_epsilon + a.sampling_times_delta * a.sampling_step_delta)
    return float(bound) if bound > 0 else None


MAT_SPEC = register_spec(MethodSpec(
    "mat", MATArgs, train_defaults=mat_training, perturbation_bound=mat_bound, optimizer=lambda a: a.sampler,
    learning_rate_field="sampling_step_theta",
    # K_δ δ steps (forward + backward), K_θ θ steps on a 2B batch (2 forwards + 2 backwards), one clean
    # forward; with λ = 0 the θ steps need no perturbed half
    passes_per_step=lambda a: (2.0 * a.sampling_times_theta if a.lambda_s == 0
                               else 1.0 + 2.0 * a.sampling_times_delta + 4.0 * a.sampling_times_theta),
))


# ------------------------------------------------------------------------------------------- FreeLB


@dataclass(frozen=True)
class FreeLBArgs(Checked):
    """FreeLB (Zhu et al., ICLR 2020), flag names of zhuchen03/FreeLB ``run_glue_freelb.py`` (--adv-steps
    ...).

    The script's own defaults (steps 1, lr 0, init 0) are vanilla training; the defaults here are in the range
    of its launch scripts, e.g. ``huggingface-transformers/launch/run_glue.sh`` (ALBERT SST-2: adv_lr 0.1,
    init_mag 0.6, max_norm 0, 2 steps; an earlier version of the line: init_mag 1.0, max_norm 0.6, 3 steps)
    and ``fairseq-RoBERTa/launch/FreeLB/sst-fp32-clip.sh`` (RoBERTa SST-2: adv_lr 0.1, init_mag 1, max_norm
    0.6, 2 steps). Training settings: the script's (AdamW, decay on all but biases and LayerNorm weights,
    gradient clipping at ``--max_grad_norm`` 1.0).
    """

    adv_steps: int = arg(
        2, "K: ascent steps on delta (K forward+backward passes); parameter gradients are averaged over "
        "them.",
        rng=(1, 1000))
    adv_init_mag: float = arg(
        1e-2, "Magnitude of the random initial delta on the real tokens (l2: U(-1,1) * mag / sqrt(tokens * "
        "hidden); linf: U(-mag, mag); 0: zero init).", rng=(0.0, INF))
    adv_lr: float = arg(1e-1, "Step size of the delta ascent.", rng=(0.0, INF))
    adv_max_norm: float = arg(0.0, "Radius of the delta ball (0: unbounded).", rng=(0.0, INF))
    norm_type: str = arg(
        "l2", "Norm of the ascent (g / ||g|| per example) and of the ball: l2 or linf (clamp per element).",
        choices=("l2", "linf"))


def freelb_bound(a: FreeLBArgs) -> float | None:
    """``adv_max_norm``, or with no ball ``adv_init_mag`` + (K−1)·``adv_lr``."""
    bound = a.adv_max_norm if a.adv_max_norm > 0 else a.adv_init_mag + (a.adv_steps - 1) * a.adv_lr
    return float(bound) if bound > 0 else None


FREELB_SPEC = register_spec(MethodSpec(
    "freelb", FreeLBArgs, train_defaults=lambda a: BERT_TRAINING, perturbation_bound=freelb_bound,
    passes_per_step=lambda a: 2.0 * a.adv_steps,  # K ascent steps, each a forward and a backward
))


# -------------------------------------------------------------------------------------------- SMART


@dataclass(frozen=True)
class SMARTArgs(Checked):
    """SMART (Jiang et al., ACL 2020): mt-dnn ``--adv_*`` flags plus the Bregman proximal term.

    ``adv_alpha`` weighs R_s as mt-dnn's ``SymKlCriterion`` does (``mt_dnn/loss.py``: each KL term's target
    distribution detached), so a value ports 1:1. Gradient clipping at 1.0 as mt-dnn's
    ``--global_grad_clipping`` default.
    """

    adv_alpha: float = arg(1.0, "lambda_s: weight of the smoothness regulariser R_s (0: off).",
        rng=(0.0, INF))
    adv_k: int = arg(1, "T_x: ascent steps on the noisy input.", rng=(0, 1000))
    adv_step_size: float = arg(1e-3, "eta: ascent step size.", rng=(0.0, INF))
    adv_noise_var: float = arg(
        1e-5, "sigma: scale of the initial noise N(0, sigma^2) on the embeddings (mt-dnn multiplies N(0, 1) "
        "by this value, despite its name).", rng=(0.0, INF))
    adv_epsilon: float = arg(
        1e-5, "epsilon: radius of the perturbation ball in adv_p_norm (paper, Algorithm 1).", rng=(0.0, INF))
    adv_p_norm: str = arg(
        "inf", "Norm of the ascent normalisation and the ball: inf (g / max|g|), l2 or l1 (sign(g), as "
        "mt-dnn).",
        choices=("inf", "l2", "l1"))
    adv_norm_level: int = arg(
        0, "0: normalise (and project) per token, mt-dnn's default; 1: per example (sentence).",
        choices=(0, 1))
    bregman_mu: float = arg(1.0, "mu: weight of the momentum Bregman proximal term (0: off).", rng=(0.0, INF))
    bregman_beta: float = arg(
        0.99, "beta: EMA coefficient of the teacher theta-tilde (theta-tilde <- beta * theta-tilde + (1 - "
        "beta) * theta after each step).", rng=(0.0, 1.0))


def smart_bound(a: SMARTArgs) -> float | None:
    """``adv_epsilon`` (the ball; ``adv_noise_var`` when ``adv_k`` = 0: no projection); none with
    ``adv_alpha`` = 0."""
    if a.adv_alpha == 0:
        return None
    bound = a.adv_epsilon if a.adv_k > 0 else a.adv_noise_var
    return float(bound) if bound > 0 else None


SMART_SPEC = register_spec(MethodSpec(
    "smart", SMARTArgs, train_defaults=lambda a: BERT_TRAINING, perturbation_bound=smart_bound,
    passes_per_step=lambda a: 5.0 + 2.0 * a.adv_k,  # T_x ascent steps (2 each) and 5 more (docs/methods.md)
))


# ---------------------------------------------------------------------------------------------- R3F


@dataclass(frozen=True)
class R3FArgs(Checked):
    """R3F (Aghajanyan et al., ICLR 2021), flag names and defaults of fairseq ``examples/rxf`` (--eps
    --r3f-lambda --noise-type). Trained without clipping: the README's ``--clip-norm 0.0``."""

    noise_type: str = arg(
        "uniform", "Noise on the embeddings: normal (N(0, eps^2)) or uniform (U(-eps, eps)).",
        choices=("normal", "uniform"))
    eps: float = arg(1e-5, "sigma: noise scale.", rng=(0.0, INF))
    r3f_lambda: float = arg(1.0, "lambda: weight of the symmetric-KL consistency term.", rng=(0.0, INF))


def r3f_bound(a: R3FArgs) -> float | None:
    """``eps``; none with ``r3f_lambda`` = 0."""
    bound = a.eps if a.r3f_lambda > 0 else 0.0
    return float(bound) if bound > 0 else None


R3F_SPEC = register_spec(MethodSpec(
    "r3f", R3FArgs, train_defaults=lambda a: replace(BERT_TRAINING, max_grad_norm=0.0),
    perturbation_bound=r3f_bound, passes_per_step=lambda a: 4.0,  # clean and noisy forwards, their backward
))

# --------------------------------------------------------------------------------------------- SALT


@dataclass(frozen=True)
class SALTArgs(Checked):
    """SALT (Zuo et al., EMNLP 2021), flags and defaults of SimiaoZuo/Stackelberg-Adv (``run.sh``:
    ``--inner-steps 1 --inner-lr 1e-4 --init-std 1e-4 --eps 0.3``), whose two regularisers enter the loss with
    weight 1 (``adv_lambda``). Training settings: the baselines' BERT set-up (the release trains MT)."""

    inner_steps: int = arg(1, "K: ascent steps of delta, unrolled (differentiable in theta).", rng=(1, 100))
    inner_lr: float = arg(1e-4, "eta: step of the plain ascent delta <- delta + eta * grad_delta l (each "
        "example's l, as the release's summed loss).", rng=(0.0, INF))
    init_std: float = arg(1e-4, "sigma: delta_0 ~ N(0, sigma^2) on the real tokens.", rng=(0.0, INF))
    eps: float = arg(0.3, "Radius of the l2 ball of each example's (T, H) delta (the release's renorm), "
        "delta_0 and every step projected into it (0: unbounded).", rng=(0.0, INF))
    adv_lambda: float = arg(1.0, "lambda: weight of l = (KL(p||q) + KL(q||p)) / 2 against the detached clean "
        "p (regression: half the squared error), at delta_K(theta) and in the leader term (0: vanilla).",
        rng=(0.0, INF))
    leader_delta: str = arg("final", "delta (detached) in the leader term lambda * l(f(x + delta), p): final "
        "(delta_K), initial (delta_0, what the release's code reads) or none (no such term).",
        choices=("final", "initial", "none"))


def salt_bound(a: SALTArgs) -> float | None:
    """``init_std``, δ's per-element scale (R3F's rule; the ascent at η = 1e-4 moves δ far less), capped by
    ``eps`` (no element of the ℓ2 ball exceeds ε); ε when σ = 0; none with λ = 0."""
    scales = [x for x in (a.init_std, a.eps) if x > 0]
    return float(min(scales)) if scales and a.adv_lambda > 0 else None


SALT_SPEC = register_spec(MethodSpec(
    "salt", SALTArgs, train_defaults=lambda a: BERT_TRAINING, perturbation_bound=salt_bound,
    # forwards: clean, K unrolled, one 2B at δ_K and δ_lead (B without the leader term); backwards: K input
    # gradients, then one through every forward and the K input-gradient graphs (the second-order term)
    passes_per_step=lambda a: (2.0 if a.adv_lambda == 0
                               else 4.0 * a.inner_steps + 4.0 + 2.0 * (a.leader_delta != "none")),
))

DEFAULT_METHOD = MAT_SPEC.name  # --method's default
