"""How a report or a comparison is computed, declared once: :class:`Options`, whose fields carry their flags.

``python -m analysis`` builds the ``report`` and ``compare`` flags from the fields (:func:`add_flags`) and
reads them back into an :class:`Options` (:func:`from_args`); :func:`analysis.report.build_report` takes one.
A field's metadata holds its flag (the field name unless given), help, choices and argparse settings, and the
commands that have it (both unless ``only``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields
from typing import Any

from analysis.aggregate import SELECTIONS
from analysis.intervals import INTERVALS
from analysis.scores import CONVENTIONS


def seed_list(text: str) -> tuple[int, ...]:
    """``"1,2,3"`` -> ``(1, 2, 3)`` (an argparse type)."""
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integer seeds like 1,2,3, got "
            f"{text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("expected at least one seed")
    return seeds


def _opt(default: Any, help: str | dict[str, str], only: str | None = None, **argparse_kw: Any) -> Any:
    """A field of :class:`Options` with its flag's settings (``help`` per command where they differ)."""
    return field(default=default, metadata={"help": help, "only": only, "argparse": argparse_kw})


@dataclass(frozen=True)
class Options:
    """How the report is computed (the ``report`` command's flags; ``compare`` takes the shared ones)."""

    selection: str = _opt("best", "evaluation each trial contributes: 'best', its best dev evaluation (the "
                          "MAT authors' rule, default; chosen on the data it is scored on, so it reads "
                          "high); 'last' (or 'final'), its last one; 'split', the one best on a fixed "
                          "selection half of the dev set, scored on the other half (needs the dev "
                          "predictions records keep; configurations are chosen on that half too)",
                          choices=(*SELECTIONS, "final"))
    convention: str = _opt("paper", "GLUE score: 'paper' = mean of 8 tasks without WNLI (the MAT paper's "
                           "Score column, default); 'glue' = all 9 tasks", only="report",
                           choices=tuple(CONVENTIONS))
    ablations: tuple[str, ...] = _opt((), "hyperparameter(s) to tabulate and plot as ablations (Tables 4-5 "
                                      "layout) even when other hyperparameters vary too; one-factor sweeps "
                                      "are found without it", only="report", flag="--ablation", nargs="+",
                                      action="extend", metavar="PARAM")
    interval: str = _opt("t", "95%% interval of a mean and of a paired difference: 't' (t-interval, n-1 "
                         "degrees of freedom; default, right at 3-30 seeds) or 'bootstrap' (percentile "
                         "bootstrap)",
                         choices=INTERVALS)
    n_boot: int = _opt(2000, "bootstrap resamples when --interval bootstrap (default 2000)",
                       flag="--bootstrap", type=int, metavar="N")
    seed: int = _opt(0, "bootstrap random seed (default 0)", type=int)
    select_seeds: tuple[int, ...] | None = _opt(
        None, "choose each task's configuration on these seeds only (default: all seeds, the same ones "
        "reported: best-of-K, optimistic)", type=seed_list, metavar="S,S")
    report_seeds: tuple[int, ...] | None = _opt(
        None, "report the chosen configurations on these seeds (default: the seeds not in --select_seeds); "
        "must not overlap --select_seeds", type=seed_list, metavar="S,S")
    baseline: str = _opt("vanilla", {
        "report": "arm of the 'arms against the baseline' table (default vanilla; left out when it has no "
                  "results)",
        "compare": "the arm every other one is compared with (e.g. vanilla)"}, metavar="ARM")
    strict: bool = _opt(False, "refuse (exit 1) when two arms ran different seeds or a configuration and "
                        "seed ran twice, instead of warning", action="store_true")


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the flags of every :class:`Options` field ``command`` has (``compare`` requires ``--baseline``)."""
    for f in fields(Options):
        meta = f.metadata
        if meta["only"] not in (None, command):
            continue
        kw = dict(meta["argparse"])
        flag = kw.pop("flag", f"--{f.name}")
        help_ = meta["help"][command] if isinstance(meta["help"], dict) else meta["help"]
        if command == "compare" and f.name == "baseline":
            kw["required"] = True
        elif kw.get("action") != "store_true":
            default: Any = f.default
            kw["default"] = list(default) if kw.get("action") == "extend" else default
        parser.add_argument(flag, dest=f.name, help=help_, **kw)


def from_args(args: argparse.Namespace) -> Options:
    """The :class:`Options` the parsed flags ask for (a command's missing fields keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in fields(Options) if hasattr(args, f.name)}
    if "ablations" in values:
        values["ablations"] = tuple(values["ablations"])
    return Options(**values)
