"""Command line: ``python -m analysis report ... --out DIR``, ``python -m analysis compare ... --baseline
M`` and ``python -m analysis benchmark --study STUDY.yml --out DIR``.

Exit status: 0 when there are results; 1 when nothing usable was found (no trials, missing inputs, no
finished trial with an evaluation, a baseline without results; the message says which) or ``--strict``
refused mismatched or repeated seeds; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

from analysis.nni_store import default_nni_dir
from analysis.options import add_flags, from_args
from analysis.tidy import AnalysisWarning

EPILOG = """examples:
  python -m analysis report --records runs/ --out report/
  python -m analysis report --experiment a1b2c3d4 e5f6g7h8 --out report/ --selection last
  python -m analysis compare --records runs/ --baseline vanilla --selection split
  python -m analysis report --experiment a1b2c3d4 --nni_dir /data/nni-experiments --convention glue \
      --out report/
  python -m analysis compare --records runs/ --baseline vanilla --markdown compare.md --csv compare.csv
  python -m analysis compare --records runs/ --baseline vanilla --select_seeds 1,2 --report_seeds 3,4,5
  python -m analysis benchmark --study studies/benchmark_cpu.yml --out docs --page benchmark.md \
      --preface results/benchmark/README.md
"""


_LINK = re.compile(r"(\]\()([^)\s]+)(\))")  # the target of a Markdown link: [text](target)


def rebase_links(markdown: str, source_dir: Path, page_dir: Path) -> str:
    """``markdown`` written in ``source_dir``, its relative link targets rewritten for a page in ``page_dir``.

    A preface (``--preface results/components/README.md``) links relative to its own folder, so its links work
    where it is read; in the generated page (``docs/results.md``) the same targets are relative to the page.
    URLs, ``#anchors`` and absolute paths are kept.
    """
    def move(m: re.Match[str]) -> str:
        target = m.group(2)
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:|#|/", target):
            return m.group(0)
        path, hash_, anchor = target.partition("#")
        moved = Path(os.path.relpath(source_dir.resolve() / path, page_dir.resolve())).as_posix()
        return f"{m.group(1)}{moved}{hash_}{anchor}{m.group(3)}"

    return _LINK.sub(move, markdown)


def _common() -> argparse.ArgumentParser:
    """The inputs ``report`` and ``compare`` share (their computing options: :mod:`analysis.options`)."""
    p = argparse.ArgumentParser(add_help=False)
    src = p.add_argument_group("inputs (at least one)")
    src.add_argument("--experiment", nargs="+", action="extend", default=[], metavar="ID",
                     help="NNI experiment id(s); read from <nni_dir>/<ID>/db/nni.sqlite (read-only) and the "
                     "trials' trial.json records. Repeatable.")
    src.add_argument("--records", nargs="+", action="extend", default=[], metavar="DIR",
                     help="folder(s) searched recursively for trial.json files (or record files). "
                     "Repeatable.")
    p.add_argument("--nni_dir", default=None, metavar="DIR",
                   help=f"folder holding NNI experiment folders (default: {default_nni_dir()})")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The ``analysis`` argument parser (sub-commands ``report`` and ``compare``)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="Analyse mat-harness trial records (trial.json files or NNI experiments): the MAT "
        "paper's tables (GLUE, ANLI, AdvGLUE, ablations), its figures, a report.md, and a paired "
        "comparison of arms against a baseline. An arm is a method, or its named variant where the "
        "record names one (params.arm, else params.rung: each rung of the component ladder is an arm); "
        "each arm is its own row, and its configurations are its trials' other parameters.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common()
    rep = sub.add_parser(
        "report", parents=[common], help="write tables, figures and report.md for trial records or NNI "
        "experiments",
        description="Load trial records and/or NNI experiments, aggregate over seeds, and write tables "
        "(Markdown, LaTeX, CSV), figures (PNG, PDF) and a report.md that embeds them into --out. Failed, "
        "running and interrupted trials are counted; skipped input files and repeated trials are listed.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rep.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    rep.add_argument("--page", default="report.md", metavar="NAME",
                     help="file name of the page written into --out (default report.md; e.g. --out docs "
                     "--page results.md writes docs/results.md, docs/tables/, docs/figures/)")
    rep.add_argument("--title", default="MAT harness report", help="the page's first heading (default 'MAT "
        "harness report')")
    rep.add_argument("--preface", default=None, metavar="FILE",
                     help="Markdown file placed under the title, before the generated sections (e.g. a "
                     "study's settings: results/components/README.md for docs/results.md)")
    add_flags(rep, "report")
    cmp_ = sub.add_parser(
        "compare", parents=[common],
        help="print arm x task: mean ± std (n) and the paired difference to a baseline",
        description="Load trial records and/or NNI experiments, choose each arm's configuration per task (an "
        "arm: a method, or its named variant, params.arm or params.rung), and print an arm x task table: "
        "mean ± std (n) per arm and, per other arm, the mean of the "
        "per-seed differences to --baseline with its interval, the paired t-test and the exact Wilcoxon "
        "p-value (Markdown on stdout; --markdown and --csv write files).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(cmp_, "compare")
    cmp_.add_argument("--markdown", default=None, metavar="FILE", help="also write the Markdown table here")
    cmp_.add_argument("--csv", default=None, metavar="FILE",
                      help="write the long table (every number: n, mean, std, configurations searched, "
                      "n_pairs, difference, interval, t, dof, p-values, warnings) as CSV here")
    _benchmark_parser(sub)
    parser.set_defaults(report_parser=rep, compare_parser=cmp_)
    return parser


def _benchmark_parser(sub: Any) -> None:
    """The ``benchmark`` sub-command's parser."""
    b = sub.add_parser(
        "benchmark", help="write a tuned-alike study's page (progress, tuning, report tables, score against "
        "compute) from its records",
        description="Read a study config (studies/*.yml, run by python -m trials.study) and its records, and "
        "write a page: which cells have records and which are missing, per task every arm's tuning (each "
        "grid point's selection-half score, the chosen one marked), and for every arm with all its report "
        "seeds the report-half score (--selection split) with its t-interval, the paired difference, t-test "
        "and exact Wilcoxon p against each of the study's baselines, Holm over the table, the compute it "
        "took, and a figure of score against training seconds. Nothing is said of an incomplete arm but "
        "how many seeds it has.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--study", required=True, metavar="FILE",
                   help="the study config: tasks, arms, grid, seeds, baselines")
    b.add_argument("--records", default=None, metavar="DIR",
                   help="the study's records folder (default: the config's records)")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    b.add_argument("--page", default="benchmark.md", metavar="NAME",
                   help="file name of the page written into --out (default benchmark.md)")
    b.add_argument("--title", default="Benchmark", help="the page's first heading (default 'Benchmark')")
    b.add_argument("--preface", default=None, metavar="FILE",
                   help="Markdown file placed under the title (the study's protocol and findings)")


def _load(args: argparse.Namespace, meanwhile: Callable[[], object] | None = None) -> tuple[Any, list[str]]:
    from analysis.load import load_with_notes

    sources = [f"NNI experiment `{e}`" for e in args.experiment] + [f"records `{r}`" for r in args.records]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AnalysisWarning)
        loaded = load_with_notes(args.records, args.experiment, args.nni_dir, meanwhile)
    notes = [str(w.message) for w in caught if issubclass(w.category, AnalysisWarning)]
    for msg in notes[:5]:
        print(f"warning: {msg}", file=sys.stderr)
    if len(notes) > 5:
        print(f"warning: ... and {len(notes) - 5} more (skipped inputs and repeats; report.md lists them "
            "all)",
              file=sys.stderr)
    return loaded, sources


def _load_or_explain(args: argparse.Namespace,
                     meanwhile: Callable[[], object] | None = None) -> tuple[Any, list[str]] | None:
    try:
        loaded, sources = _load(args, meanwhile)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    if len(loaded.frame) == 0:
        skipped = len(loaded.skipped)
        print(f"error: nothing usable found in {', '.join(sources)}: no trial records"
              + (f" ({skipped} file(s) skipped as unreadable or invalid)" if skipped else ""),
              file=sys.stderr)
        return None
    return loaded, sources


REPORT_MODULES = ("analysis.report", "scipy.special")


def report(args: argparse.Namespace) -> int:
    """Run ``report``; return the exit status."""
    # the report's modules (matplotlib among them, and scipy.special for its tests) are imported while another
    # process reads records
    from analysis.load import collector_paused

    with collector_paused():
        loaded = _load_or_explain(args, lambda: [importlib.import_module(m) for m in REPORT_MODULES])
        gc.freeze()  # before the collector resumes: the records stay to the end, later collections skip them
    if loaded is None:
        return 1
    data, sources = loaded
    from analysis.report import build_report

    try:
        preface = _read_preface(args)
    except OSError as e:
        print(f"error: cannot read --preface: {e}", file=sys.stderr)
        return 1

    try:
        result = build_report(data, args.out, from_args(args), sources, page=args.page, title=args.title,
                              preface=preface)
    except ValueError as e:  # SeedMismatch under --strict, overlapping seed lists
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result.summary)
    if not result.usable:
        print("error: nothing usable found: no finished trial with an evaluation "
              f"(see {result.report})", file=sys.stderr)
        return 1
    return 0


def compare_tables(loaded: Any, args: argparse.Namespace) -> tuple[str, Any]:
    """The ``compare`` output for ``loaded`` (:class:`analysis.tidy.Loaded`): Markdown (one table per model)
    and the long frame.

    Raises:
        ValueError: no finished trial, a baseline without results, or (``--strict``) a repeated
            configuration and seed or seeds that differ between an arm and the baseline (SeedMismatch).
    """
    from analysis import aggregate, tables
    from analysis.comparison import (
        SeedMismatch,
        compare_to_baseline,
        comparison_table,
        seed_problems,
        table_notes,
    )

    opt = from_args(args)
    scores = aggregate.trial_scores(loaded.frame, opt.selection)
    if scores.empty:
        raise ValueError("nothing usable found: no finished trial with an evaluation")
    rep = loaded.repeats
    if opt.strict and len(rep):
        raise SeedMismatch("--strict: configuration and seed run twice: " + "; ".join(
            f"{r.method}, {r.task}, seed {r.seed} ({r.kept_source}, "
            f"{r.repeat_source})" for r in rep.itertuples()))
    choice = aggregate.choose_configs(scores, opt.select_seeds, opt.report_seeds, opt.interval, opt.n_boot,
                                      seed=opt.seed)
    long = compare_to_baseline(choice.per_seed, opt.baseline, choice.best, interval=opt.interval,
                               n_boot=opt.n_boot, seed=opt.seed, strict=opt.strict)
    for problem in seed_problems(choice.per_seed):
        print(f"warning: {problem}", file=sys.stderr)
    notes = [*table_notes(opt.interval), choice.note]
    if len(rep):
        notes.append(f"{len(rep)} repeated trial(s) of a configuration and seed counted once.")
    parts = []
    for model, g in long.groupby("model", sort=True):
        table = comparison_table(g, opt.baseline, f"Dev task score against {opt.baseline}, {model}",
                                 notes=notes)
        parts.append(tables.to_markdown(table))
    return "\n".join(parts), long


def compare(args: argparse.Namespace) -> int:
    """Run ``compare``; return the exit status."""
    loaded = _load_or_explain(args)
    if loaded is None:
        return 1
    try:
        md, long = compare_tables(loaded[0], args)
    except ValueError as e:  # no results, unknown baseline, SeedMismatch under --strict, overlapping seeds
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(md, end="")
    if args.markdown:
        Path(args.markdown).write_text(md, encoding="utf-8")
    if args.csv:
        long.to_csv(args.csv, index=False)
    return 0


def _read_preface(args: argparse.Namespace) -> str | None:
    """The ``--preface`` file with its links rebased for the page in ``--out`` (None without one).

    Raises:
        OSError: it cannot be read.
    """
    if not args.preface:
        return None
    return rebase_links(Path(args.preface).read_text(encoding="utf-8"), Path(args.preface).parent,
                        Path(args.out))


def benchmark(args: argparse.Namespace) -> int:
    """Run ``benchmark``; return the exit status (1: an unreadable study, records folder or preface, or a
    record without dev predictions)."""
    from analysis.benchmark_page import build_benchmark_page
    from analysis.load import load_with_notes
    from analysis.study_plan import read_plan

    try:
        plan = read_plan(args.study)
        preface = _read_preface(args)
        records = args.records or os.path.relpath(plan.records)  # relative: the page names no local folder
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AnalysisWarning)  # the page lists what was skipped
            loaded = load_with_notes([records])
        result = build_benchmark_page(loaded, plan, args.out, [f"records `{Path(records).as_posix()}`"],
                                      page=args.page, title=args.title, preface=preface)
    except (ValueError, OSError) as e:  # also: a record without the dev predictions split selection needs
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result.summary)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m analysis``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "benchmark":
        return benchmark(args)
    sub = args.report_parser if args.command == "report" else args.compare_parser
    if not args.experiment and not args.records:
        sub.error(f"{args.command} needs --experiment ID or --records DIR (or both)")
    if args.n_boot < 1:
        sub.error("--bootstrap must be at least 1")
    if args.select_seeds and args.report_seeds and set(args.select_seeds) & set(args.report_seeds):
        sub.error("--select_seeds and --report_seeds overlap: a configuration chosen on a seed cannot be "
                  "reported on it without selection bias")
    return report(args) if args.command == "report" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
