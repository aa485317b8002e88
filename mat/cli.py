"""The trial's command line: every flag is a config field (:mod:`mat.spec.config`), named exactly as the
field.

``--method`` is read first, so ``--method smart --help`` lists SMART's flags. ``--help`` groups the flags
(run settings, training, the method's own) and states each default once. The trial script requires
``--task`` and ``--model`` (:data:`REQUIRED`); without them it prints the usage and one line naming them.

Other tools' names for the same settings work too (:data:`FLAG_ALIASES`): transformers' ``run_glue.py``
(``--task_name``, ``--model_name_or_path``, ``--num_train_epochs``, ``--per_device_train_batch_size``,
``--max_seq_length``, ``--fp16``, ...) and the MAT authors' release (``--model_name``, ``--warm_up``,
``--optimizer Adam``, ...); docs/nni.md lists them in one table. NNI's aliases work as flags too:
``--sampling_times K`` sets K_δ = K_θ = K and ``--beta B`` sets β_s = β_p = B
(:data:`mat.spec.config.ALIASES`).

A mistyped or unknown flag (answered with the closest valid flag or alias), a value out of range (named by
the flag as given: ``--sampling_times_delta=-1 is out of range [0, 10000]``) or a bad combination ends in
argparse's usage error, exit 2.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import types
import typing
from typing import Any, Mapping, Sequence

from transformers import HfArgumentParser

from mat.spec.config import ALIASES, RunArgs, TrainArgs, TrialConfig, apply_overrides
from mat.spec.methods import METHOD_ARGS
from mat.spec.naming import FieldError, did_you_mean

DESCRIPTION = (
    "Fine-tune a pre-trained model on a GLUE/ANLI task with MAT or a baseline; writes trial.json. --task and "
    "--model are required. Under NNI, the parameters NNI sends override the flags. "
    "--method M --help lists M's flags."
)
USAGE = (f"%(prog)s --task TASK --model MODEL [--method {{{','.join(METHOD_ARGS)}}}] [--output_dir DIR] "
         "[flag ...]")  # the registry's methods
REQUIRED: tuple[str, ...] = ("task", "model")  # what the trial script requires, as run_glue requires its own
REQUIRED_HELP = {
    "task": "--task (cola sst2 mrpc stsb qqp mnli qnli rte wnli anli_r1 anli_r2 anli_r3)",
    "model": "--model (a Hub id, a local folder, or minilm)",
}
ALIAS_HELP = {
    "sampling_times": "Sets sampling_times_delta and sampling_times_theta to one K (the paper's Table 7 "
                      "tunes one K).",
    "beta": "Sets beta_s and beta_p to one beta (Algorithm 2 has one beta).",
}

# Other tools' flag names for our fields: {alias: (field, whose)}. run_glue = transformers'
# examples/pytorch/text-classification/run_glue.py with its TrainingArguments; authors = Charles-Zhong/MAT's
# utils/argparse.py and run.sh. Names both tools share with us (--seed, --learning_rate, --output_dir,
# --warmup_ratio, --weight_decay, --batch_size, --epochs, ...) need no alias.
FLAG_ALIASES: Mapping[str, tuple[str, str]] = {
    "task_name": ("task", "run_glue, authors"),
    "model_name_or_path": ("model", "run_glue"),
    "model_name": ("model", "authors"),
    "model_path": ("model", "authors"),
    "num_train_epochs": ("epochs", "run_glue"),
    "per_device_train_batch_size": ("batch_size", "run_glue"),
    "per_device_eval_batch_size": ("eval_batch_size", "run_glue"),
    "max_seq_length": ("max_length", "run_glue"),
    "do_predict": ("predict", "run_glue"),
    "save_steps": ("checkpoint_every", "run_glue"),
    "dataloader_num_workers": ("num_workers", "run_glue"),
    "warm_up": ("warmup_ratio", "authors"),
    "scheduler_type": ("lr_scheduler_type", "authors"),
}
# Flags that set a field to a value of their own: {flag: (field, value, whose)}.
VALUE_FLAGS: Mapping[str, tuple[str, str, str]] = {
    "fp16": ("precision", "fp16", "run_glue"),
    "bf16": ("precision", "bf16", "run_glue"),
}
# The authors' --optimizer names MAT's sampler by its torch optimizer (SGD, RMSprop, Adam).
AUTHORS_OPTIMIZER = {"sgd": "sgld", "rmsprop": "rmsprop", "adam": "adam"}
# run_glue flags with no counterpart here, and what to do instead.
NO_COUNTERPART = {
    "--do_train": "This script always trains and then evaluates: drop --do_train and --do_eval",
    "--do_eval": "This script always trains and then evaluates: drop --do_train and --do_eval",
}


class TrialHelpFormatter(argparse.HelpFormatter):
    """Each flag once with its aliases (``--task TASK (also --task_name)``) and its default once: appended
    only when the help does not already say it, and never for a default of None (the help says what
    happens then)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        flag = bool(action.option_strings) and action.nargs != 0
        quiet = action.default in (None, "", argparse.SUPPRESS) or not flag
        return text if quiet or "default" in text.lower() else f"{text} (default: %(default)s)"

    def _format_action_invocation(self, action: argparse.Action) -> str:
        strings = action.option_strings
        if not strings or isinstance(action, argparse._HelpAction):
            return super()._format_action_invocation(action)
        # the hyphen spelling of a name (--max-length) is accepted, not listed
        names = [s for s in strings if not ("-" in s[2:] and "--" + s[2:].replace("-", "_") in strings)]
        metavar = self._format_args(action, action.dest.upper())
        head = names[0] if action.nargs == 0 else f"{names[0]} {metavar}"
        return head + (f" (also {', '.join(names[1:])})" if names[1:] else "")


class TrialArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` with the flag aliases, one help group per config group, and ``range`` metadata
    left to ``__post_init__`` (it is not an argparse option)."""

    def _add_dataclass_arguments(self, dtype: Any) -> None:
        group = self.add_argument_group(_group_title(dtype))
        hints = typing.get_type_hints(dtype)
        for f in dataclasses.fields(dtype):
            if f.init:
                f.type = hints[f.name]
                self._parse_dataclass_field(group, f)  # type: ignore[arg-type]

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field[Any]) -> None:
        f = copy.copy(field)
        meta = {k: v for k, v in field.metadata.items() if k != "range"}
        meta["aliases"] = [f"--{a}" for a, (target, _) in FLAG_ALIASES.items() if target == field.name]
        if field.type is bool:
            meta["metavar"] = "true|false"
        f.metadata = types.MappingProxyType(meta)
        HfArgumentParser._parse_dataclass_field(parser, f)


def _group_title(dtype: Any) -> str:
    if dtype is RunArgs:
        return "run settings (flags of NNI's trialCommand; never searched)"
    if dtype is TrainArgs:
        return "training (searchable: an NNI parameter of the same name overrides the flag)"
    method = next(m for m, a in METHOD_ARGS.items() if a is dtype)
    return f"--method {method}: its own hyperparameters (searchable)"


def _aliases(method: str) -> dict[str, tuple[str, ...]]:
    """The NNI aliases whose targets are all fields of ``method``'s args."""
    names = {f.name for f in dataclasses.fields(METHOD_ARGS[method])}
    return {a: t for a, t in ALIASES.items() if all(x in names for x in t)}


def _authors_optimizer(value: str) -> str:
    try:
        return AUTHORS_OPTIMIZER[value.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: choose one of SGD, RMSprop, Adam (the authors' names of --sampler)") from None


def build_parser(method: str, required: Sequence[str] = ()) -> TrialArgumentParser:
    """The parser over RunArgs, TrainArgs, the method's args, its NNI aliases and the other tools' flag names.

    A ``required`` field's flag has no default (its help says "Required."); :func:`parse_cli` names it when
    missing.
    """
    types_: Any = (RunArgs, TrainArgs, METHOD_ARGS[method])
    parser = TrialArgumentParser(types_, allow_abbrev=False, description=DESCRIPTION, usage=USAGE,
                                 formatter_class=TrialHelpFormatter)
    groups = {g.title: g for g in parser._action_groups}
    run, own = groups[_group_title(RunArgs)], groups[_group_title(METHOD_ARGS[method])]
    flags = run.add_mutually_exclusive_group()
    for flag, (target, value, whose) in VALUE_FLAGS.items():
        flags.add_argument(f"--{flag}", dest=f"_{flag}", action="store_true",
                           help=f"= --{target} {value} ({whose}).")
    for alias, targets in _aliases(method).items():
        kind = type(getattr(METHOD_ARGS[method](), targets[0]))
        own.add_argument(f"--{alias}", type=kind, default=None,
                         help=ALIAS_HELP.get(alias, f"Sets {', '.join(targets)}."))
    for action in parser._actions:
        if action.dest in required:
            action.default, action.help = None, f"Required. {action.help}"
    if "sampler" in {f.name for f in dataclasses.fields(METHOD_ARGS[method])}:  # MAT's theta sampler
        own.add_argument("--optimizer", dest="_optimizer", type=_authors_optimizer, default=None,
                         metavar="{SGD,RMSprop,Adam}",
                         help="The authors' name of --sampler: SGD = sgld, RMSprop = rmsprop, Adam = adam.")
    return parser


def _flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions for s in a.option_strings if s.startswith("--")]


def _method_flags(method: str) -> set[str]:
    """Every flag name (without ``--``) that only ``method`` has."""
    fields = {f.name for f in dataclasses.fields(METHOD_ARGS[method])}
    return fields | set(_aliases(method)) | {a for a, (t, _) in FLAG_ALIASES.items() if t in fields} | (
        {"optimizer"} if "sampler" in fields else set())


def _unknown_flag_error(parser: argparse.ArgumentParser, unknown: list[str], method: str) -> str:
    first = next((u for u in unknown if u.startswith("-")), unknown[0])
    name = first.split("=")[0]
    owners = [m for m in METHOD_ARGS if name[2:] in _method_flags(m)]
    if owners and first.startswith("--"):
        hint = f" {name} is a flag of --method {' / '.join(owners)}, not of {method}."
    elif name in NO_COUNTERPART:
        hint = f" {NO_COUNTERPART[name]}."
    else:
        hint = did_you_mean(name, _flag_names(parser)) if first.startswith("-") else ""
    return f"unrecognized arguments: {' '.join(unknown)}.{hint} (--method {method} --help lists every flag)"


def _typed_flags(parser: argparse.ArgumentParser, args: Sequence[str]) -> dict[str, str]:
    """``{dest: the flag as the user typed it}`` (the last one typed, for a dest given twice)."""
    by_flag = {s: a.dest for a in parser._actions for s in a.option_strings}
    typed: dict[str, str] = {}
    for word in args:
        flag = word.split("=")[0]
        if flag in by_flag:
            typed[by_flag[flag]] = flag
    return typed


def parse_cli(argv: Sequence[str] | None = None, required: Sequence[str] = ()) -> TrialConfig:
    """Parse trial flags into a :class:`~mat.spec.config.TrialConfig`.

    Args:
        argv: the flags (default ``sys.argv[1:]``).
        required: fields that must be given as flags (the trial script passes :data:`REQUIRED`); a field
            left out keeps its config default otherwise.

    Exits with argparse's usage error (status 2) on a missing required flag, an unknown flag (with "did you
    mean"), a value of the wrong type or out of range (naming the flag as typed), or two flags that set the
    same setting (an NNI alias and a flag it sets, ``--fp16`` and ``--precision``, ``--optimizer`` and
    ``--sampler``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--method", default=RunArgs.method, choices=list(METHOD_ARGS))
    known, _ = pre.parse_known_args(args)
    parser = build_parser(known.method, required)
    namespace, unknown = parser.parse_known_args(args)
    if unknown:
        parser.error(_unknown_flag_error(parser, unknown, known.method))
    typed = _typed_flags(parser, args)
    missing = [name for name in required if name not in typed]
    if missing:
        what = ", ".join(REQUIRED_HELP.get(m, f"--{m}") for m in missing)
        parser.error(f"the following arguments are required: {what}")
    values = vars(namespace)
    _merge_value_flags(parser, values, typed)
    overrides: dict[str, Any] = {}
    for alias, targets in _aliases(known.method).items():
        value = values.pop(alias, None)
        if value is None:
            continue
        clash = [typed[t] for t in targets if t in typed]
        if clash:
            parser.error(f"--{alias} sets {', '.join(targets)}: "
                         f"give either --{alias} or {' or '.join(clash)}, not both")
        overrides[alias] = value
    try:
        groups = []
        for dtype in (RunArgs, TrainArgs, METHOD_ARGS[known.method]):
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            groups.append(dtype(**{k: v for k, v in values.items() if k in names}))
        cfg = TrialConfig(run=groups[0], train=groups[1], method=groups[2])
        return apply_overrides(cfg, overrides) if overrides else cfg
    except FieldError as e:
        as_typed = typed.get(e.field, f"--{e.field}")
        flag = next((f"--{a}" for a in overrides if e.field in ALIASES[a]), as_typed)
        parser.error(str(e.renamed(flag)))
    except ValueError as e:
        parser.error(str(e))
    raise AssertionError("unreachable: parser.error exits")


def _merge_value_flags(parser: argparse.ArgumentParser, values: dict[str, Any],
                       typed: Mapping[str, str]) -> None:
    """Fold ``--fp16``/``--bf16`` into ``precision`` and ``--optimizer`` into ``sampler``; a clash is a usage
    error."""
    for flag, (target, value, _) in VALUE_FLAGS.items():
        if values.pop(f"_{flag}", False):
            if target in typed:
                parser.error(f"--{flag} sets --{target} {value}: "
                             f"give either --{flag} or {typed[target]}, not both")
            values[target] = value
    optimizer = values.pop("_optimizer", None)
    if optimizer is not None:
        if "sampler" in typed:
            parser.error("--optimizer is the authors' name of --sampler: "
                         f"give either --optimizer or {typed['sampler']}, not both")
        values["sampler"] = optimizer


def parameter_key(field: str, params: Mapping[str, Any]) -> str:
    """The key of ``params`` (NNI parameters) that set ``field``: the field itself or an NNI alias of it."""
    return next((k for k in params if k == field or field in ALIASES.get(k, ())), field)
