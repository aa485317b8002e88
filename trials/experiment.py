"""Start an NNI experiment with ``nnictl`` and follow it through NNI's REST API until it ends.

``python -m trials.experiment run nni_configs/quickstart.yml --port 8080`` is ``nnictl create`` plus a wait:
it prints the web UI address, a line whenever the trial counts change, and a summary table at the end,
and exits non-zero unless every trial SUCCEEDED (NNI itself says DONE even when all trials FAILED).
No ``import nni`` here: ``nnictl`` runs as a subprocess and the REST API is plain HTTP.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

from trials.nni_store import trial_parameters

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ENDED = ("DONE", "STOPPED", "ERROR")
NO_MORE = ("NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL")  # the end only once no trial is still to come (see wait)
# nnictl's output when NNI's web server did not answer its status check within NNI's 3-second start-up wait
# (refused, or not yet JSON): it failed after "Starting web server..." and before "Setting up..."
SLOW_START = re.compile(r"Starting web server\.\.\.(?:(?!Setting up\.\.\.).)*Create experiment failed:", re.S)
TRIAL_DONE = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")


class ExperimentError(RuntimeError):
    """nnictl failed, or the experiment did not end as asked."""


def nnictl() -> str:
    """Path of ``nnictl``, next to this interpreter first (a venv), else on PATH."""
    from pathlib import Path

    here = Path(sys.executable).parent / "nnictl"
    found = str(here) if here.exists() else shutil.which("nnictl")
    if not found:
        raise ExperimentError("nnictl not found: install the nni extra (`pip install 'mat-harness[nni]'`)")
    return found


def create(config: str, port: int, timeout: float = 120, attempts: int = 3,
           env: Mapping[str, str] | None = None) -> str:
    """``nnictl create --config CONFIG --port PORT``; returns the experiment id.

    NNI 3.0 gives its web server 3 seconds to answer (``nni.experiment.launcher._check_rest_server``) and
    gives up otherwise ("Create experiment failed: ... check-status ... Connection refused", or "Expecting
    value" when it answered but not yet with JSON), killing the server it started; on a machine busy with
    other trials that happens (seen here beside two study trials). Such a start is retried, up to
    ``attempts`` starts in all (each a new experiment id; the failed one's folder stays, never started).

    Args:
        env: the environment for nnictl (default: this process's).

    Raises:
        ExperimentError: nnictl exits non-zero or prints no experiment id (its output is in the message).
    """
    out, code = "", 0
    for attempt in range(1, attempts + 1):
        proc = subprocess.run(
            [nnictl(), "create", "--config", config, "--port", str(port)],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
        )
        out, code = ANSI.sub("", proc.stdout + proc.stderr), proc.returncode
        m = re.search(r"Experiment ID:\s*(\w+)", out) or re.search(r"experiment id:?\s*(\w+)", out, re.I)
        if code == 0 and m:
            return m.group(1)
        if not SLOW_START.search(out) or attempt == attempts:
            break
        print(f"nnictl create: NNI's web server did not answer within its 3 s (a busy machine?); "
              f"starting again ({attempt + 1}/{attempts})", file=sys.stderr, flush=True)
    raise ExperimentError(f"nnictl create failed (exit {code}):\n{out}")


def stop(experiment_id: str, timeout: float = 60) -> None:
    """``nnictl stop ID`` (errors ignored: the experiment may already be stopped)."""
    subprocess.run([nnictl(), "stop", experiment_id], capture_output=True, timeout=timeout,
        stdin=subprocess.DEVNULL)


def rest(port: int, path: str, timeout: float = 10) -> Any:
    """GET ``http://127.0.0.1:PORT/api/v1/nni/PATH`` as JSON."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nni/{path}", timeout=timeout) as r:
        return json.loads(r.read().decode())


def trial_jobs(port: int) -> list[dict[str, Any]]:
    """The trials, each with ``trialJobId``, ``status``, ``parameters`` and ``final`` (dict or None).

    A trial's parameters are found through the ``parameterId`` of its own metrics
    (:func:`trials.nni_store.trial_parameters`, microsoft/nni#5726).
    """
    jobs = rest(port, "trial-jobs")
    params = trial_parameters(jobs, rest(port, "metric-data"))
    out = []
    for t in jobs:
        final = None
        if t.get("finalMetricData"):
            data = json.loads(t["finalMetricData"][0]["data"])
            final = json.loads(data) if isinstance(data, str) else data
        out.append({**t, "parameters": params[t["trialJobId"]], "final": final})
    return out


def wait(port: int, timeout: float, poll: float = 3.0, echo: bool = True,
    on_poll: Callable[[], None] | None = None,
         gone_after: float = 30.0, expected: int | None = None, settle: float = 15.0) -> str:
    """Poll until the experiment is DONE/STOPPED/ERROR; returns that status. ``on_poll`` runs after each poll.

    ``NO_MORE_TRIAL``/``TUNER_NO_MORE_TRIAL`` with every listed trial done is not yet the end: NNI can say so
    while the tuner's last parameters have no trial job yet (seen under GridSearch: 2 of 3 trials SUCCEEDED,
    the third not listed). It ends the wait once ``expected`` trials (the experiment's trial count, where the
    caller knows it) are listed and done, else once the state has held ``settle`` seconds with no new trial.

    Raises:
        ExperimentError: ``timeout`` seconds passed first, or the REST API answered once and then stopped
            answering for ``gone_after`` seconds (``nnictl stop`` from elsewhere: NNI is gone, nothing will
            end).
    """
    start, last, lost = time.time(), None, None
    seen, quiet = False, None
    while time.time() - start < timeout:
        try:
            status = rest(port, "check-status")["status"]
            counts = Counter(t["status"] for t in rest(port, "trial-jobs"))
            seen, lost = True, None
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            status, counts = "STARTING", Counter()
            lost = lost if lost is not None else time.time()
            if seen and time.time() - lost >= gone_after:
                raise ExperimentError(f"NNI's REST API on port {port} stopped answering "
                                      f"{time.time() - lost:.0f} s ago (the experiment was stopped, e.g. by "
                                      "`nnictl stop`)") from None
        state = f"{status}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        if echo and state != last and not (seen and lost):
            print(f"[{time.time() - start:6.0f}s] {state}", flush=True)
            last = state
        if on_poll is not None:
            on_poll()
        all_done, total = all(s in TRIAL_DONE for s in counts.elements()), sum(counts.values())
        if all_done and (status in ENDED
                         or (status in NO_MORE and expected is not None and total >= expected)):
            return status
        if not (all_done and status in NO_MORE):
            quiet = None
        elif quiet is None or quiet[1] != total:
            quiet = (time.time(), total)
        elif time.time() - quiet[0] >= settle:
            return status
        time.sleep(poll)
    raise ExperimentError(f"the experiment did not finish within {timeout:.0f} s")


def summary(jobs: list[dict[str, Any]]) -> str:
    """A plain-text table: trial, status, default metric, parameters."""
    rows = [f"{'trial':<8} {'status':<10} {'default':>9}  parameters"]
    for t in sorted(jobs, key=lambda t: t.get("sequenceId", 0)):
        d = t["final"].get("default") if isinstance(t["final"], dict) else t["final"]
        dv = f"{d:9.4f}" if isinstance(d, (int, float)) else f"{'-':>9}"
        rows.append(f"{t['trialJobId']:<8} {t['status']:<10} {dv}  "
            f"{json.dumps(t['parameters'], sort_keys=True)}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``run CONFIG`` starts, waits and summarises; exit 0 only if every trial SUCCEEDED."""
    p = argparse.ArgumentParser(prog="python -m trials.experiment", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="nnictl create, then wait for the end and print a summary")
    r.add_argument("config", help="NNI experiment config (YAML), e.g. nni_configs/quickstart.yml")
    r.add_argument("--port", type=int, default=8080, help="web UI / REST port (default 8080)")
    r.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the end (default 3600)")
    r.add_argument("--stop", action="store_true", help="nnictl stop the experiment at the end (default: keep "
        "the web UI up)")
    args = p.parse_args(argv)
    exp = create(args.config, args.port)
    print(f"experiment {exp} started; web UI: http://127.0.0.1:{args.port}  (stop it with: nnictl stop "
        f"{exp})", flush=True)
    try:
        status = wait(args.port, args.timeout)
        jobs = trial_jobs(args.port)
    except BaseException:
        stop(exp)
        raise
    print(summary(jobs))
    bad = [t["trialJobId"] for t in jobs if t["status"] != "SUCCEEDED"]
    print(f"experiment {exp}: {status}; {len(jobs) - len(bad)}/{len(jobs)} trials SUCCEEDED; records in "
        f"~/nni-experiments/{exp}/")
    if args.stop:
        stop(exp)
    if bad or not jobs:
        print(f"not every trial SUCCEEDED: {bad}; see their logs in the web UI or trial.json",
            file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
