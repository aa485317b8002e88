"""Benchmark: ``python -m analysis report`` on 10,000 synthetic trial records.

Usage (from the repo root)::

    python benchmarks/analysis_report.py [--n 10000] [--evals 10] [--keep DIR]

Generates the records (5 methods x 9 GLUE tasks x 5 seeds x as many configurations as needed, each with
``--evals`` intermediate evaluations; 1 in 97 trials FAILED, 1 in 89 RUNNING, plus 3 corrupt files) into
a temporary folder, then runs the report in a child process and prints its wall time, its CPU time
(user + system) and its peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``). Targets: under 15 s wall,
under 2 GB. The machine's load average is printed too: on a shared 2-core machine, wall time grows
with other people's jobs while CPU time does not.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.synthetic import METHODS, synthetic_records, write_records  # noqa: E402
from mat.spec.tasks import GLUE_TASKS  # noqa: E402

WALL_TARGET_S = 15.0
RSS_TARGET_MB = 2048.0


def generate(out: Path, n: int, n_evals: int) -> int:
    """Write ``n`` synthetic records (and 3 corrupt files) under ``out``; return the record count."""
    seeds = (1, 2, 3, 4, 5)
    n_configs = math.ceil(n / (len(METHODS) * len(GLUE_TASKS) * len(seeds)))
    count = write_records(synthetic_records(METHODS, GLUE_TASKS, seeds, n_configs, n_evals, limit=n,
                                            failed_every=97, running_every=89), out)
    for i, text in enumerate(('{"schema": 1, "trial_id": "trunc', '{"schema": 99}', "not json")):
        bad = out / f"corrupt-{i}"
        bad.mkdir()
        (bad / "trial.json").write_text(text)
    return count


def run_report(records: Path, out: Path) -> tuple[float, float, float, int]:
    """Run the CLI in a child; return (wall s, child CPU s, child peak RSS in MB, exit status)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "analysis", "report", "--records", str(records), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        sys.stderr.write(proc.stderr)
    return wall, cpu, usage.ru_maxrss / 1024.0, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of trial records (default 10000)")
    parser.add_argument("--evals", type=int, default=10, help="intermediate evaluations per trial (default 10)")
    parser.add_argument("--keep", default=None, help="write records and report here instead of a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="analysis-bench-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        records, out = base / "records", base / "report"
        records.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        count = generate(records, args.n, args.evals)
        print(f"generated {count} records (+3 corrupt files) in {time.perf_counter() - t0:.1f} s")
        load_before = os.getloadavg()[0]
        wall, cpu, rss_mb, rc = run_report(records, out)
    ok = rc == 0 and wall < WALL_TARGET_S and rss_mb < RSS_TARGET_MB
    print(f"report: wall {wall:.2f} s (target < {WALL_TARGET_S:.0f} s), CPU {cpu:.2f} s, peak RSS {rss_mb:.0f} MB "
          f"(target < {RSS_TARGET_MB:.0f} MB), exit {rc}: {'OK' if ok else 'MISSED'}")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.2f} before the run")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
