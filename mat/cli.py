"""The trial's command line: every flag is a config field (:mod:`mat.spec.config`), named exactly as the
field.

``--method`` is read first, so ``--method smart --help`` lists SMART's flags. A mistyped or unknown flag, a
value out of range or a bad combination ends in argparse's usage error (exit 2) naming the flag and, for
an unknown one, the closest valid flag. NNI's aliases work as flags too: ``--sampling_times K`` sets
K_δ = K_θ = K and ``--beta B`` sets β_s = β_p = B (:data:`mat.spec.config.ALIASES`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import types
from typing import Any, Sequence

from transformers import HfArgumentParser

from mat.spec.config import ALIASES, RunArgs, TrainArgs, TrialConfig, apply_overrides
from mat.spec.methods import METHOD_ARGS
from mat.spec.naming import did_you_mean

DESCRIPTION = (
    "Fine-tune a pre-trained model on a GLUE/ANLI task with MAT or a baseline; writes trial.json. "
    "Under NNI, the parameters NNI sends override the flags. Use --method M --help for M's flags."
)
ALIAS_HELP = {
    "sampling_times": "Sets sampling_times_delta and sampling_times_theta to one K (the paper's Table 7 "
    "tunes one K).",
    "beta": "Sets beta_s and beta_p to one beta (Algorithm 2 has one beta).",
}


class TrialArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` whose ``range`` metadata is left to ``__post_init__`` (it is not an argparse
    option)."""

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field[Any]) -> None:
        f = copy.copy(field)
        f.metadata = types.MappingProxyType({k: v for k, v in field.metadata.items() if k != "range"})
        HfArgumentParser._parse_dataclass_field(parser, f)


def _aliases(method: str) -> dict[str, tuple[str, ...]]:
    """The aliases whose targets are all fields of ``method``'s args."""
    names = {f.name for f in dataclasses.fields(METHOD_ARGS[method])}
    return {a: t for a, t in ALIASES.items() if all(x in names for x in t)}


def build_parser(method: str) -> TrialArgumentParser:
    """The parser over RunArgs, TrainArgs, the method's args and its NNI aliases."""
    types_: Any = (RunArgs, TrainArgs, METHOD_ARGS[method])
    parser = TrialArgumentParser(types_, allow_abbrev=False, description=DESCRIPTION)
    for alias, targets in _aliases(method).items():
        kind = type(getattr(METHOD_ARGS[method](), targets[0]))
        parser.add_argument(f"--{alias}", type=kind, default=None,
            help=ALIAS_HELP.get(alias, f"Sets {', '.join(targets)}."))
    return parser


def _flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def parse_cli(argv: Sequence[str] | None = None) -> TrialConfig:
    """Parse trial flags into a :class:`~mat.spec.config.TrialConfig`.

    Exits with argparse's usage error (status 2) on an unknown flag (with "did you mean"), a value of the
    wrong type or out of range, or an alias given together with a flag it sets.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--method", default=RunArgs.method, choices=list(METHOD_ARGS))
    known, _ = pre.parse_known_args(args)
    parser = build_parser(known.method)
    namespace, unknown = parser.parse_known_args(args)
    if unknown:
        flags = _flag_names(parser)
        first = next((u for u in unknown if u.startswith("-")), unknown[0])
        name = first.split("=")[0]
        owners = [m for m, a in METHOD_ARGS.items()
                  if name[2:] in {f.name for f in dataclasses.fields(a)} | set(_aliases(m))]
        if owners and first.startswith("--"):
            hint = f" {name} is a flag of --method {' / '.join(owners)}, not of {known.method}."
        else:
            hint = did_you_mean(name, flags) if first.startswith("-") else ""
        parser.error(f"unrecognized arguments: {' '.join(unknown)}.{hint} (--method {known.method} --help "
            "lists every flag)")
    values = vars(namespace)
    given = {a.split("=")[0].lstrip("-") for a in args if a.startswith("--")}
    overrides: dict[str, Any] = {}
    for alias, targets in _aliases(known.method).items():
        value = values.pop(alias, None)
        if value is None:
            continue
        clash = [t for t in targets if t in given]
        if clash:
            parser.error(f"--{alias} sets {', '.join(targets)}: give either --{alias} or "
                f"--{', --'.join(clash)}, not both")
        overrides[alias] = value
    try:
        groups = []
        for dtype in (RunArgs, TrainArgs, METHOD_ARGS[known.method]):
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            groups.append(dtype(**{k: v for k, v in values.items() if k in names}))
        cfg = TrialConfig(run=groups[0], train=groups[1], method=groups[2])
        return apply_overrides(cfg, overrides) if overrides else cfg
    except ValueError as e:
        parser.error(str(e))
    raise AssertionError("unreachable: parser.error exits")
