"""A study's arm and phase as NNI parameters: ``method``, ``arm`` and ``phase`` beside the searched ones.

A study runner (``python -m trials.study``, docs/study.md) sends every trial its cell: the arm's method and
fixed settings, the grid point (a learning rate) and the seed, plus two labels, ``arm`` (the arm's name, e.g.
``vanilla_steps``) and ``phase`` (``tune`` or ``report``). One ``trialCommand`` serves every arm, so
``method`` may switch the trial's ``--method``: the training settings given as flags are kept, the ones the
old method defaulted are derived again for the new one (:class:`mat.spec.config.TrialConfig`), and the new
method starts from its documented defaults before the arm's own settings are merged. The labels change
nothing that is trained; they are written into the record's ``params``, where the analysis reads the arm
(:func:`analysis.identity.arm_name`) and the phase. No torch here.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

from mat.spec.config import TrialConfig, apply_overrides
from mat.spec.methods import METHOD_ARGS
from mat.spec.naming import unknown_name

ARM_KEY, PHASE_KEY, METHOD_KEY = "arm", "phase", "method"
PHASES: tuple[str, ...] = ("tune", "report")
ARM_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # a folder name and a table row: lower case, digits, underscores


def check_arm_name(name: Any) -> str:
    """``name`` if it is a valid arm name (lower case letters, digits and underscores, starting with a
    letter).

    Raises:
        ValueError: anything else (the message shows the rule).
    """
    if not isinstance(name, str) or not ARM_NAME.match(name):
        raise ValueError(f"arm must be a name of lower-case letters, digits and underscores starting with a "
                         f"letter (it names a folder and a table row); got {name!r}")
    return name


def check_phase(phase: Any) -> str:
    """``phase`` if it is one of :data:`PHASES`.

    Raises:
        ValueError: anything else (the message lists the phases).
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {', '.join(PHASES)}; got {phase!r}")
    return str(phase)


def check_method(method: Any) -> str:
    """``method`` if it names a method of :data:`mat.spec.config.METHOD_ARGS`.

    Raises:
        ValueError: not a string, or unknown (the message names the closest method and lists them all).
    """
    if not isinstance(method, str):
        raise ValueError(f"method must be a string, one of {', '.join(METHOD_ARGS)}; got {method!r}")
    if method not in METHOD_ARGS:
        raise ValueError(unknown_name("method", method, METHOD_ARGS))
    return method


def with_method(cfg: TrialConfig, method: str) -> TrialConfig:
    """``cfg`` trained with ``method`` at its default arguments; the given training settings kept, the ones
    the old method defaulted derived again for the new one (unchanged when ``method`` is already
    ``cfg``'s)."""
    if check_method(method) == cfg.run.method:
        return cfg
    return TrialConfig(run=dataclasses.replace(cfg.run, method=method), train=cfg.given_train(),
                       method=METHOD_ARGS[method](), rung=cfg.rung)


def apply_study_params(cfg: TrialConfig, params: Mapping[str, Any]) -> tuple[TrialConfig, dict[str, str]]:
    """Merge a study cell's NNI parameters: ``method`` first, then the rest by
    :func:`mat.spec.config.apply_overrides`; ``arm`` and ``phase`` are checked and returned as labels.

    Returns:
        The merged config and the labels for the record's ``params`` (``{}`` when none was sent).

    Raises:
        ValueError: an unknown method, a bad arm name or phase, or what :func:`apply_overrides` raises.
    """
    labels: dict[str, str] = {}
    if ARM_KEY in params:
        labels[ARM_KEY] = check_arm_name(params[ARM_KEY])
    if PHASE_KEY in params:
        labels[PHASE_KEY] = check_phase(params[PHASE_KEY])
    if METHOD_KEY in params:
        cfg = with_method(cfg, params[METHOD_KEY])
    rest = {k: v for k, v in params.items() if k not in (ARM_KEY, PHASE_KEY, METHOD_KEY)}
    return apply_overrides(cfg, rest), labels
