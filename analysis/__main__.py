"""Command line: ``python -m analysis report (--experiment ID ... | --records DIR ...) --out DIR``.

Exit status: 0 when the report has results; 1 when nothing usable was found (no trials, missing
inputs, or no finished trial with an evaluation; the message says which); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Sequence

from analysis.load import AnalysisWarning, default_nni_dir

EPILOG = """examples:
  python -m analysis report --records runs/ --out report/
  python -m analysis report --experiment a1b2c3d4 e5f6g7h8 --out report/ --selection final
  python -m analysis report --experiment a1b2c3d4 --nni_dir /data/nni-experiments --convention glue --out report/
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``analysis`` argument parser (one sub-command, ``report``)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Analyse mat-harness trial records (trial.json files or NNI experiments): the MAT "
        "paper's tables (GLUE, ANLI, AdvGLUE, ablations), its figures and a report.md.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rep = sub.add_parser(
        "report", help="write tables, figures and report.md for trial records or NNI experiments",
        description="Load trial records and/or NNI experiments, aggregate over seeds, and write tables "
        "(Markdown, LaTeX, CSV), figures (PNG, PDF) and a report.md that embeds them into --out. Failed, "
        "running and interrupted trials are counted; skipped input files are listed.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = rep.add_argument_group("inputs (at least one)")
    src.add_argument("--experiment", nargs="+", action="extend", default=[], metavar="ID",
                     help="NNI experiment id(s); read from <nni_dir>/<ID>/db/nni.sqlite (read-only) and the "
                     "trials' trial.json records. Repeatable.")
    src.add_argument("--records", nargs="+", action="extend", default=[], metavar="DIR",
                     help="folder(s) searched recursively for trial.json files (or record files). Repeatable.")
    rep.add_argument("--nni_dir", default=None, metavar="DIR",
                     help=f"folder holding NNI experiment folders (default: {default_nni_dir()})")
    rep.add_argument("--selection", choices=("best", "final"), default="best",
                     help="evaluation each trial contributes: its best dev evaluation (the MAT authors' rule, "
                     "default) or its final one")
    rep.add_argument("--convention", choices=("paper", "glue"), default="paper",
                     help="GLUE score: 'paper' = mean of 8 tasks without WNLI (the MAT paper's Score column, "
                     "default); 'glue' = all 9 tasks")
    rep.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    rep.add_argument("--ablation", nargs="+", action="extend", default=[], metavar="PARAM",
                     help="hyperparameter(s) to tabulate and plot as ablations (Tables 4-5 layout) even when "
                     "other hyperparameters vary too; one-factor sweeps are found without it")
    rep.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                     help="bootstrap resamples for the 95%% intervals (default 2000)")
    rep.add_argument("--seed", type=int, default=0, help="bootstrap random seed (default 0)")
    parser.set_defaults(report_parser=rep)
    return parser


def _load(args: argparse.Namespace) -> tuple[object, list[str]]:
    from analysis.load import load

    sources = [f"NNI experiment `{e}`" for e in args.experiment] + [f"records `{r}`" for r in args.records]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnalysisWarning)
        df = load(args.records, args.experiment, args.nni_dir)
    notes = [str(w.message) for w in caught if issubclass(w.category, AnalysisWarning)]
    for msg in notes[:5]:
        print(f"warning: {msg}", file=sys.stderr)
    if len(notes) > 5:
        print(f"warning: ... and {len(notes) - 5} more skipped inputs (listed in report.md)", file=sys.stderr)
    return df, sources


def report(args: argparse.Namespace) -> int:
    """Run ``report``; return the exit status."""
    try:
        df, sources = _load(args)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if len(df) == 0:  # type: ignore[arg-type]
        skipped = len(df.attrs.get("skipped", []))  # type: ignore[attr-defined]
        print(f"error: nothing usable found in {', '.join(sources)}: no trial records"
              + (f" ({skipped} file(s) skipped as unreadable or invalid)" if skipped else ""), file=sys.stderr)
        return 1
    from analysis.report import build_report

    result = build_report(df, args.out, args.selection, args.convention,  # type: ignore[arg-type]
                          sources, args.ablation, n_boot=args.bootstrap, seed=args.seed)
    print(result.summary)
    if not result.usable:
        print("error: nothing usable found: no finished trial with an evaluation "
              f"(see {result.report})", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m analysis``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "report":
        if not args.experiment and not args.records:
            args.report_parser.error("report needs --experiment ID or --records DIR (or both)")
        if args.bootstrap < 1:
            args.report_parser.error("--bootstrap must be at least 1")
        return report(args)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
