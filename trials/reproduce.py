"""``python -m trials.reproduce RECORD...``: train a recorded trial again and compare it with its record.

A record (``trial.json``) names everything a trial's numbers depend on: the method, task, model and seed,
every resolved hyperparameter (``params``) and the run settings that change a result (``run``). This command
rebuilds the trial's configuration from them, trains it again with this checkout's code, and compares every
evaluation as it lands with the record's, exactly: the step, the score, each metric, every dev prediction and
the mean training statistics since the previous evaluation (the loss, ...). After a complete run it also
compares the cost counts (optimizer steps and updates, forward and backward passes, tokens).

Bit-identity needs what the record cannot carry: the same device and the same CPU thread count (1-thread
trials, as the study runner starts, by default), and the torch and transformers versions the record names
(checked; a difference is reported). A record made with another commit is the point: where this checkout's
``mat`` package differs from the record's commit (``git diff``), the files are listed, so a reproduced record
shows that the change kept its numbers.

``--evaluations N`` stops after the N-th evaluation: a CoLA trial's first evaluation comes after a twelfth of
its steps. The run stops at the first evaluation that differs. It trains in a temporary folder that is deleted
afterwards (the record is not touched).

Exit status: 0 when every compared evaluation (and, after a complete run, the cost counts) equal the record's,
1 when something differs, 2 for a file that is not a record with evaluations or a configuration that cannot be
rebuilt.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mat.provenance import HERE as MAT_PACKAGE  # noqa: E402
from mat.provenance import resolve, versions  # noqa: E402
from mat.runtime import set_threads  # noqa: E402
from mat.spec.arms import ARM_KEY, PHASE_KEY  # noqa: E402
from mat.spec.config import RESULT_RUN_KEYS, RunArgs, TrainArgs, TrialConfig, apply_overrides  # noqa: E402
from mat.spec.ladder import RUNG_KEY  # noqa: E402
from mat.spec.methods import METHOD_ARGS  # noqa: E402
from mat.spec.records import EvalResult, TrialRecord, read_record  # noqa: E402
from mat.train import fit  # noqa: E402

__all__ = ["Comparison", "compare_eval", "config_of", "main", "reproduce"]

log = logging.getLogger("mat.reproduce")

REPO = Path(__file__).resolve().parents[1]
LABELS = (ARM_KEY, PHASE_KEY, RUNG_KEY, "precision")  # params keys that are not settings to merge
COST_COUNTS = ("optimizer_steps", "optimizer_updates", "passes", "diagnostic_passes", "train_tokens",
               "padded_tokens")
EXIT_DIFFERS, EXIT_BAD_INPUT = 1, 2


class _Enough(Exception):
    """Raised from the evaluation callback to end the rerun early (enough evaluations, or one differed)."""


def config_of(record: TrialRecord, device: str = "cpu", data_dir: str | None = None,
              output_dir: str | None = None) -> TrialConfig:
    """The configuration ``record`` ran with: its method, task, model and seed, its ``params`` (every resolved
    hyperparameter; the study's ``arm``/``phase`` labels and the ladder's ``rung`` are labels, not settings)
    and its ``run`` settings; ``precision`` from the record (``params["precision"]``, the format it used).

    Raises:
        ValueError: a ``run`` or ``params`` key this code does not know, or a rebuilt configuration whose
            parameters differ from the record's (the keys named).
    """
    if record.method not in METHOD_ARGS:
        raise ValueError(f"the record's method {record.method!r} is not one of this code's methods: "
                         f"{', '.join(METHOD_ARGS)}")
    unknown_run = sorted(set(record.run) - set(RESULT_RUN_KEYS))
    if unknown_run:
        raise ValueError(f"the record's run settings {unknown_run} are not run settings of this code "
                         f"({', '.join(RESULT_RUN_KEYS)})")
    precision = record.params.get("precision") or (record.precision or {}).get("used") or "auto"
    run = RunArgs(task=record.task, model=record.model, method=record.method, device=device,
                  precision=str(precision), output_dir=output_dir, data_dir=data_dir, num_threads=1,
                  checkpoint_every=0, **record.run)
    base = TrialConfig(run=run, train=TrainArgs(), method=METHOD_ARGS[record.method]())
    settings = {k: v for k, v in record.params.items() if k not in LABELS}
    cfg = apply_overrides(base, settings)
    if record.params.get(RUNG_KEY):
        cfg = dataclasses.replace(cfg, rung=str(record.params[RUNG_KEY]))
    rebuilt = {k: v for k, v in cfg.params().items() if k not in LABELS}
    differs = sorted(k for k in set(rebuilt) | set(settings) if rebuilt.get(k) != settings.get(k))
    if differs:
        raise ValueError("the rebuilt configuration differs from the record's params in "
                         + ", ".join(f"{k} (record {settings.get(k)!r}, rebuilt {rebuilt.get(k)!r})"
                                     for k in differs))
    return cfg


def _same(a: Any, b: Any) -> bool:
    """Exact equality, with NaN equal to NaN (a statistic that was NaN in the record must be NaN again)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def compare_eval(got: EvalResult, want: EvalResult) -> list[str]:
    """What differs between a rerun's evaluation and the record's, exactly ([] when nothing does): the step,
    the score, each metric (and extra split), every dev prediction, the mean training statistics."""
    diffs: list[str] = []
    if got.step != want.step:
        diffs.append(f"step {got.step} (record {want.step})")
    if not _same(got.score, want.score):
        diffs.append(f"score {got.score!r} (record {want.score!r})")
    for name in sorted(set(got.metrics) | set(want.metrics)):
        if not _same(got.metrics.get(name), want.metrics.get(name)):
            diffs.append(f"{name} {got.metrics.get(name)!r} (record {want.metrics.get(name)!r})")
    if not _same(got.splits, want.splits):
        diffs.append(f"extra splits {got.splits} (record {want.splits})")
    for split in sorted(set(got.predictions or {}) | set(want.predictions or {})):
        a, b = (got.predictions or {}).get(split), (want.predictions or {}).get(split)
        if a != b:
            wrong = "missing" if a is None or b is None else (
                f"{sum(x != y for x, y in zip(a.split(','), b.split(',')))} of {len(b.split(','))} differ")
            diffs.append(f"{split} predictions: {wrong}")
    if want.telemetry and not _same(got.telemetry, want.telemetry):
        keys = sorted(k for k in set(got.telemetry or {}) | set(want.telemetry)
                      if not _same((got.telemetry or {}).get(k), want.telemetry.get(k)))
        diffs.append(f"training statistics {', '.join(keys)}: "
                     + ", ".join(f"{k} {(got.telemetry or {}).get(k)!r} (record {want.telemetry.get(k)!r})"
                                 for k in keys[:3]))
    return diffs


@dataclass
class Comparison:
    """A rerun against its record: the lines to print, how many evaluations matched, what differed."""

    path: Path
    lines: list[str] = field(default_factory=list)
    compared: int = 0
    total: int = 0
    differs: list[str] = field(default_factory=list)
    complete: bool = False  # the rerun trained to its last step (the cost counts were compared)

    @property
    def reproduced(self) -> bool:
        return not self.differs and self.compared > 0


def code_changes(commit: str | None) -> str:
    """Which files of ``mat/`` differ between ``commit`` and this checkout (its working tree), in words."""
    if not commit:
        return "the record names no commit"
    try:
        out = subprocess.run(["git", "diff", "--name-only", commit, "--", str(MAT_PACKAGE)], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot compare with commit {commit[:7]} ({type(e).__name__})"
    if out.returncode != 0:
        return f"cannot compare with commit {commit[:7]} (not in this checkout's history?)"
    files = out.stdout.split()
    if not files:
        return f"the mat package is as at the record's commit {commit[:7]}"
    return f"the mat package differs from the record's commit {commit[:7]} in {len(files)} file(s): " + \
        ", ".join(files)


def reproduce(path: Path, evaluations: int | None = None, device: str = "cpu", data_dir: str | None = None,
              show_progress: bool = False) -> Comparison:
    """Train the trial of the record at ``path`` again and compare it, evaluation by evaluation.

    Raises:
        ValueError: not a record, a record without evaluations, or a configuration that cannot be rebuilt.
    """
    record = read_record(path)
    if not record.evals:
        raise ValueError(f"{path}: the record has no evaluations to compare (status {record.status})")
    want = record.evals if evaluations is None else record.evals[:evaluations]
    result = Comparison(path, total=len(record.evals))
    result.lines.append(f"{path}: {record.method} on {record.task}, seed {record.seed}, {len(record.evals)} "
                        f"evaluations, {record.status}; comparing {len(want)}")
    result.lines.append(f"  code: {code_changes(record.git_sha)}")
    now = versions()
    for lib in ("torch", "transformers"):
        then = (record.versions or {}).get(lib)
        if then and then != now.get(lib):
            result.lines.append(f"  {lib} {now.get(lib)} here, {then} in the record: bit-identity is not "
                                "expected")

    def check(ev: EvalResult, _rec: TrialRecord) -> None:
        i = result.compared
        diffs = compare_eval(ev, want[i])
        result.compared += 1
        if diffs:
            result.differs.append(f"evaluation {i + 1} (step {want[i].step}): " + "; ".join(diffs))
            result.lines.append(f"  step {ev.step}: DIFFERS: " + "; ".join(diffs))
            raise _Enough
        result.lines.append(f"  step {ev.step}: score {ev.score!r} = record; predictions, metrics and "
                            "training statistics equal")
        if result.compared == len(want) and len(want) < len(record.evals):
            raise _Enough

    with tempfile.TemporaryDirectory(prefix="mat-reproduce-") as tmp:
        cfg = config_of(record, device=device, data_dir=data_dir, output_dir=tmp)
        set_threads(cfg.run.num_threads, "trials.reproduce: the study runner's 1-thread trials")
        try:
            rerun = fit(resolve(cfg), on_eval=check, show_progress=show_progress)
        except _Enough:
            return result
        result.complete = True
        for key in COST_COUNTS:
            a, b = (rerun.cost or {}).get(key), (record.cost or {}).get(key)
            if b is not None and not _same(a, b):
                result.differs.append(f"cost {key} {a!r} (record {b!r})")
        if len(rerun.evals) != len(record.evals):
            result.differs.append(f"{len(rerun.evals)} evaluations (record {len(record.evals)})")
        if not result.differs:
            result.lines.append("  cost counts (" + ", ".join(COST_COUNTS) + ") equal")
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trials.reproduce", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a recorded trial again and compare it with its record.\n\n"
                    + "\n\n".join((__doc__ or "").replace("``", "`").split("\n\n")[1:]).strip(),
        epilog="Example: MAT_DATA_DIR=<data folder> python -m trials.reproduce "
               "results/benchmark/cola/report/vanilla-seed1/trial.json --evaluations 2")
    parser.add_argument("records", nargs="+", type=Path, metavar="RECORD",
                        help="trial.json files (or folders holding one) to train again.")
    parser.add_argument("--evaluations", type=int, default=None, metavar="N",
                        help="Compare the first N evaluations only and stop the rerun after the N-th "
                             "(default: every evaluation, and then the cost counts).")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="Device of the rerun: the record's own (default cpu; records do not name it).")
    parser.add_argument("--data_dir", default=None,
                        help="Local data folder (default: $MAT_DATA_DIR, else the Hugging Face Hub).")
    parser.add_argument("--progress", action="store_true", help="Draw the rerun's progress bar.")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="Also write the comparisons to FILE (one object per record).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Rerun each record and print the comparison; the exit status is the worst one (0, 1 or 2)."""
    args = build_parser().parse_args(argv)
    if args.evaluations is not None and args.evaluations < 1:
        build_parser().error(f"--evaluations {args.evaluations}: give 1 or more (or leave it out for all)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    status, out = 0, []  # type: tuple[int, list[dict[str, Any]]]
    for given in args.records:
        path = given / "trial.json" if given.is_dir() else given
        try:
            result = reproduce(path, args.evaluations, args.device, args.data_dir, args.progress)
        except (OSError, ValueError) as e:
            print(f"{path}: cannot reproduce: {e}", file=sys.stderr)
            status = max(status, EXIT_BAD_INPUT)
            out.append({"record": str(path), "error": str(e)})
            continue
        print("\n".join(result.lines))
        if result.reproduced:
            what = "every evaluation and the cost counts" if result.complete else \
                f"{result.compared} of {result.total} evaluations"
            print(f"  reproduced bit for bit: {what}")
        else:
            print(f"  NOT reproduced: {'; '.join(result.differs)}")
            status = max(status, EXIT_DIFFERS)
        out.append({"record": str(path), "reproduced": result.reproduced, "compared": result.compared,
                    "evaluations": result.total, "complete": result.complete, "differs": result.differs})
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
