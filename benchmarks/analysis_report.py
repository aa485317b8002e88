"""Benchmark: ``python -m analysis report`` on 10,000 synthetic trial records.

Usage (from the repo root)::

    python benchmarks/analysis_report.py [--n 10000] [--evals 10] [--repeat 3] [--twice] [--keep DIR]

Generates the records (5 methods x 9 GLUE tasks x 5 seeds x as many configurations as needed, each with
``--evals`` intermediate evaluations; 1 in 97 trials FAILED, 1 in 89 RUNNING, plus 3 corrupt files) into
a temporary folder, then runs the report ``--repeat`` times, each in a child process, and prints each run's
wall time, CPU time (user + system) and peak RSS (``resource.getrusage(RUSAGE_CHILDREN)``), with the load
average before it, and the median wall time. Targets: a median under 5 s wall, under 2 GB. On a shared
2-core machine wall time grows with other people's jobs while CPU time does not: read the load average.
``--twice`` gives the records folder twice, so every record is also a duplicate to set aside (10,003 skipped
inputs): the case that made reports slow while the skipped list lived in ``DataFrame.attrs``, which pandas
deep-copies into every derived frame (109 s there; the frame and its lists now travel apart).

The reports run as after an install: Python's bytecode cached (in the temporary folder, through
``PYTHONPYCACHEPREFIX``, even where ``PYTHONDONTWRITEBYTECODE`` is set, so nothing is written into the
repository), after one untimed run that compiles it; otherwise every run would also time compiling the
harness's modules from source.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analysis.synthetic import METHODS, synthetic_records, write_records  # noqa: E402
from mat.spec.tasks import GLUE_TASKS  # noqa: E402

WALL_TARGET_S = 5.0
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


def run_report(records: list[Path], out: Path, pycache: Path) -> tuple[float, float, float, int]:
    """Run the CLI in a child on ``records``, bytecode cached under ``pycache``; return (wall s, child CPU s,
    child peak RSS MB, exit status)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    command = [sys.executable, "-m", "analysis", "report", "--records", *map(str, records), "--out", str(out)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
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
    parser.add_argument("--repeat", type=int, default=3,
                        help="report runs; the median wall time is the figure")
    parser.add_argument("--twice", action="store_true",
                        help="give the records folder twice: every record is also a duplicate to set aside")
    parser.add_argument("--keep", default=None, help="write records and report here instead of a temp folder")
    args = parser.parse_args()
    walls: list[float] = []
    codes: list[int] = []
    rss_max = 0.0
    with tempfile.TemporaryDirectory(prefix="analysis-bench-") as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        records, out = base / "records", base / "report"
        records.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        count = generate(records, args.n, args.evals)
        print(f"generated {count} records (+3 corrupt files) in {time.perf_counter() - t0:.1f} s")
        given = [records, records] if args.twice else [records]
        pycache = base / "pycache"
        wall, _, _, rc = run_report(given, out, pycache)
        print(f"untimed first run (compiles the bytecode): wall {wall:.2f} s, exit {rc}")
        for i in range(args.repeat):
            load_before = os.getloadavg()[0]
            wall, cpu, rss_mb, rc = run_report(given, out, pycache)
            walls.append(wall)
            rss_max, codes = max(rss_max, rss_mb), codes + [rc]
            print(f"run {i + 1}: wall {wall:.2f} s, CPU {cpu:.2f} s, peak RSS {rss_mb:.0f} MB, exit {rc}; "
                  f"load average {load_before:.2f} before it ({os.cpu_count()} CPUs)")
    median = statistics.median(walls)
    ok = not any(codes) and median < WALL_TARGET_S and rss_max < RSS_TARGET_MB
    print(f"report: median wall {median:.2f} s of {len(walls)} (target < {WALL_TARGET_S:.0f} s), peak RSS "
          f"{rss_max:.0f} MB (target < {RSS_TARGET_MB:.0f} MB): {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
