"""The component ladder: MAT taken apart into rungs, each adding one part, as one NNI parameter ``rung``.

=========================  =======  ==========================================================================
rung                       method   adds (to the rung before)
=========================  =======  ==========================================================================
``vanilla``                vanilla  plain fine-tuning: one optimizer step per batch
``inner_steps``            mat      K_θ optimizer steps per batch (λ = 0, no noise, β_s = β_p = 0, no δ)
``sampling``               mat      the θ Langevin noise, the θ̄ average and the final mix (λ = 0)
``dropout_consistency``    mat      λ·ℓ_s between two dropout masks (K_δ = 0, δ ≡ 0): R-Drop in MAT's loop
``mat``                    mat      the adversarial δ at the authors' bound (``adv_max_norm`` 1e-5)
``mat_visible_delta``      mat      δ's bound, initial scale and step raised until δ's KL dominates dropout's
``r3f``                    r3f      beside the ladder: R3F, the cheapest published consistency baseline
=========================  =======  ==========================================================================

A trial's ``--method mat`` flags are the *shared* settings (K_θ, K_δ, λ, noise ratio, β, sampler, learning
rate, epochs...); the rung sets its own fields on top (:attr:`Rung.fixed`, in MAT's field names) and may
switch the method: ``vanilla`` and ``r3f`` train with their own step but keep every shared training setting
(learning rate, decay and its scope, clipping, schedule), so rungs differ in their own part only. ``r3f``
takes λ as ``r3f_lambda`` and fairseq's defaults for its noise (U(−1e-5, 1e-5)).

A parameter sent together with the rung that sets one of the rung's own fields to another value is refused
with the reason (``dropout_consistency`` with ``sampling_times_delta`` 2: δ would move); so is a shared
setting the rung cannot work with (:attr:`Rung.needs`: ``inner_steps`` with K_θ = 1 is vanilla, ``mat``
with K_δ = 0 has no adversary). The trial's flags are not checked against the rung: they are the base it
edits (one ``trialCommand`` serves every rung). No torch here: ``analysis`` reads the rung order from it.

``mat_visible_delta``: on the packaged MiniLM (real batches, train mode, the CPU study's settings) δ's own KL
at the authors' bound 1e-5 is ~1e-7 of the dropout-only KL and grows as the square of the bound; at 1e-1 it is
14-25x the dropout-only KL on RTE, CoLA, MRPC and STS-B, at 3e-2 only 1.3-1.8x (docs/components.md has the
measurement). The initial scale is a tenth of the bound and the step equals it, so one normalised ascent step
reaches the bound along the gradient (the random start does not dominate) while the Langevin noise of the
step, sqrt(2γ_δ)·ε·γ_δ, stays small beside it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from mat.spec.naming import unknown_name

RUNG_KEY = "rung"  # the NNI parameter (and params key of the record)

# δ at the authors' bound (their six BEST_LOGs: randn init 1e-5, adv_max_norm 1e-5, sampling_step_delta 1e-3)
AUTHORS_DELTA: Mapping[str, float] = {"adv_max_norm": 1e-5, "adv_init_epsilon": 1e-5,
    "sampling_step_delta": 1e-3}
# δ large enough to matter on MiniLM (module docstring)
VISIBLE_DELTA: Mapping[str, float] = {"adv_max_norm": 1e-1, "adv_init_epsilon": 1e-2,
    "sampling_step_delta": 1e-1}
R3F_NOISE: Mapping[str, Any] = {"eps": 1e-5, "noise_type": "uniform"}  # fairseq examples/rxf defaults

_OPS: Mapping[str, Callable[[Any, Any], bool]] = {">": operator.gt, ">=": operator.ge, "==": operator.eq}
_SINGLE_STEP = {"sampling_times_theta": 1, "sampling_times_delta": 0, "sampling_noise_ratio": 0.0,
    "beta_s": 0.0, "beta_p": 0.0}
_NO_DELTA = {"sampling_times_delta": 0, "lambda_s": 0.0}
_INNER = (("sampling_times_theta", ">=", 2, "K_θ = 1 is one optimizer step per batch (vanilla)"),)
_SAMPLED = _INNER + (
    ("sampling_noise_ratio", ">", 0.0, "no θ Langevin noise is the inner_steps rung"),
    ("beta_s", ">", 0.0, "β_s = 0 leaves no θ̄ average"),
    ("beta_p", ">", 0.0, "β_p = 0 leaves no final mix"),
)
_CONSISTENT = _SAMPLED + (("lambda_s", ">", 0.0, "λ = 0 turns the consistency term off"),)
_ADVERSARIAL = _CONSISTENT + (("sampling_times_delta", ">=", 1, "K_δ = 0 leaves δ at its random start: no "
    "adversary"),)
_ADAMW = (("sampler", "==", "adam", "this rung trains with AdamW: the ladder's shared sampler must be adam"),)


@dataclass(frozen=True)
class Rung:
    """One rung of the ladder.

    Attributes:
        name: the ``rung`` value.
        method: the ``--method`` the rung trains with.
        adds: what the rung adds to the rung before it (one line, for the docs and the report).
        fixed: MAT settings the rung sets, in MAT's field names (for ``vanilla``/``r3f``: what their step
            amounts to in MAT's terms, checked against the parameters sent with the rung).
        why: why the rung fixes them (in the refusal message).
        needs: ``(field, op, value, reason)`` conditions on the shared MAT settings.
    """

    name: str
    method: str
    adds: str
    fixed: Mapping[str, Any]
    why: str
    needs: tuple[tuple[str, str, Any, str], ...] = ()


RUNGS: tuple[Rung, ...] = (
    Rung("vanilla", "vanilla", "plain fine-tuning, one optimizer step per batch",
        {**_SINGLE_STEP, "lambda_s": 0.0},
         "vanilla is one optimizer step per batch without noise, averages or a consistency term", _ADAMW),
    Rung("inner_steps", "mat", "K_θ optimizer steps per batch", {**_NO_DELTA, "sampling_noise_ratio": 0.0,
        "beta_s": 0.0, "beta_p": 0.0},
         "inner_steps adds the K_θ optimizer steps only: no noise, no averages, no consistency term", _INNER),
    Rung("sampling", "mat", "θ Langevin noise, the θ̄ average and the final mix", dict(_NO_DELTA),
         "sampling adds the θ sampler only: no consistency term", _SAMPLED),
    Rung("dropout_consistency", "mat", "λ·ℓ_s between two dropout masks (R-Drop in MAT's loop)",
         {"sampling_times_delta": 0, "adv_init_epsilon": 0.0},
         "δ ≡ 0 (no δ steps, zero initial δ): ℓ_s compares two dropout masks only", _CONSISTENT),
    Rung("mat", "mat", "the adversarial δ at the authors' bound", dict(AUTHORS_DELTA),
         "mat is δ at the authors' bound, initial scale and step", _ADVERSARIAL),
    Rung("mat_visible_delta", "mat", "δ's bound, initial scale and step raised until δ's own KL dominates",
        dict(VISIBLE_DELTA),
         "mat_visible_delta is δ at the raised bound, initial scale and step", _ADVERSARIAL),
    Rung("r3f", "r3f", "R3F: λ·ℓ_s against noise U(−1e-5, 1e-5), one optimizer step", dict(_SINGLE_STEP),
         "R3F is one optimizer step per batch without δ steps, noise or averages",
         _ADAMW + (_CONSISTENT[-1],)),
)
RUNG_NAMES: tuple[str, ...] = tuple(r.name for r in RUNGS)
LADDER: tuple[str, ...] = RUNG_NAMES[:-1]  # the ladder proper, in order; r3f stands beside it


def get_rung(name: Any) -> Rung:
    """The rung named ``name``.

    Raises:
        ValueError: not a string, or unknown (the message lists the valid rungs and the closest match).
    """
    if not isinstance(name, str):
        raise ValueError(f"rung must be a string, one of {', '.join(RUNG_NAMES)}; got {name!r}")
    for r in RUNGS:
        if r.name == name.strip().lower():
            return r
    raise ValueError(unknown_name("rung", name, RUNG_NAMES))


def previous_rung(name: str) -> str | None:
    """The ladder rung before ``name`` (``vanilla`` for ``r3f``; None for ``vanilla``)."""
    if name == "r3f":
        return "vanilla"
    i = LADDER.index(get_rung(name).name)
    return LADDER[i - 1] if i > 0 else None


def rung_settings(name: Any, method: str, shared: Mapping[str, Any],
    sent: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The method and its arguments for rung ``name``, built on the shared MAT settings.

    Args:
        name: the ``rung`` parameter.
        method: the trial's ``--method`` (must be ``mat``: the shared settings are MAT's).
        shared: the merged MAT arguments (``dataclasses.asdict(MATArgs)``).
        sent: the parameters sent with the rung (aliases expanded), checked against the rung's own fields.

    Returns:
        ``(method, arguments)``: the rung's ``--method`` and the keyword arguments of its argument dataclass.

    Raises:
        ValueError: unknown rung; ``method`` is not ``mat``; a sent parameter contradicts the rung; a shared
            setting the rung needs is missing (each message names the rung, the field and the reason).
    """
    rung = get_rung(name)
    if method != "mat":
        raise ValueError(f"rung {rung.name!r} needs --method mat in the trial command: the rungs are built "
                         f"from MAT's settings (the rung switches to --method {rung.method} itself); got "
                         f"--method {method}")
    for key, value in rung.fixed.items():
        if key in sent and sent[key] != value:
            raise ValueError(f"rung {rung.name!r} sets {key} = {value} ({rung.why}); the parameters also set "
                             f"{key} = {sent[key]!r}: drop {key} from the search space or choose another "
                             "rung")
    settings = {**shared, **(rung.fixed if rung.method == "mat" else {})}
    for key, op, value, reason in rung.needs:
        if not _OPS[op](settings[key], value):
            raise ValueError(f"rung {rung.name!r} needs {key} {op} {value} (got {settings[key]!r}): {reason}")
    if rung.method == "mat":
        return "mat", settings
    if rung.method == "r3f":
        return "r3f", {**R3F_NOISE, "r3f_lambda": float(shared["lambda_s"])}
    return rung.method, {}
