"""Start an NNI experiment with ``nnictl`` and follow it through NNI's REST API until it ends.

``python -m trials.experiment run nni_configs/quickstart.yml --port 8080`` is ``nnictl create`` plus a wait:
it checks the config first (a missing or invalid file is one line naming it and the problem), prints the web
UI address, a line whenever the trial counts change, and a summary table at the end, and exits non-zero unless
every trial SUCCEEDED (NNI itself says DONE even when all trials FAILED).

NNI 3.0's manager serves the web UI and a REST API without authentication (anyone who reaches it can stop,
change and read the experiment) on every interface, and has no option to change that. For the local training
service the experiment's manager is therefore started with ``NODE_OPTIONS=--require mat/loopback.js``, which
makes it listen on 127.0.0.1 only (:func:`manager_env`); ``--bind ADDRESS`` chooses another address, with a
warning. Other training services keep NNI's default, as their workers must reach the manager (docs/nni.md,
"Security"). ``nnictl`` runs as a subprocess and the REST API is plain HTTP; NNI's own config classes check
the config.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import mat
from trials import nni_env
from trials.nni_store import trial_parameters

ANSI = re.compile(r"\x1b\[[0-9;]*m")
ENDED = ("DONE", "STOPPED", "ERROR")
NO_MORE = ("NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL")  # the end only once no trial is still to come (see wait)
# nnictl's output when NNI's web server did not answer its status check within NNI's 3-second start-up wait
# (refused, or not yet JSON): it failed after "Starting web server..." and before "Setting up..."
SLOW_START = re.compile(r"Starting web server\.\.\.(?:(?!Setting up\.\.\.).)*Create experiment failed:", re.S)
TRIAL_DONE = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")


LOOPBACK = "127.0.0.1"
AUTO = "auto"  # create()'s bind: loopback for the local training service, else NNI's default (all interfaces)
BIND_ENV = "MAT_NNI_BIND"  # the address mat/loopback.js makes host-less servers listen on
LOOPBACK_JS = Path(mat.__file__).resolve().parent / "loopback.js"
SECURITY = "docs/nni.md#security"
# nnictl and this module reach the manager through localhost, so it must listen on loopback at least:
# 127.0.0.1 alone, or every interface. A single network address would lock nnictl out.
BIND_CHOICES = (LOOPBACK, "0.0.0.0", "::")


class ExperimentError(RuntimeError):
    """nnictl failed, or the experiment did not end as asked."""


class ConfigError(ValueError):
    """The experiment config cannot be read or NNI refuses it: one line naming the file and the problem."""


def load_config(path: str) -> dict[str, Any]:
    """The experiment config as a mapping, after NNI's own validation (what ``nnictl create`` checks first).

    Raises:
        ConfigError: no such file, not YAML, not a mapping, no ``trainingService.platform``, or NNI refuses it
            (an unknown or misspelled key, a missing search space file, a value out of range).
    """
    import traceback

    import yaml

    file = Path(path)
    if not file.is_file():
        what = "is a folder, not" if file.is_dir() else "no such file: expected"
        raise ConfigError(f"{path}: {what} an NNI experiment config (YAML)")
    try:
        cfg = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or " ".join(str(e).split())
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    services = cfg.get("trainingService") if isinstance(cfg, dict) else None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of NNI config keys (trialCommand, trainingService, "
                          f"...), got {type(cfg).__name__}")
    listed = services if isinstance(services, list) else [services]
    if not all(isinstance(s, dict) and s.get("platform") for s in listed):
        raise ConfigError(f"{path}: no trainingService with a platform "
                          "(e.g. trainingService: {platform: local})")
    from nni.experiment.config import ExperimentConfig
    from nni.experiment.config.utils.internal import unset_base_path

    try:
        ExperimentConfig.load(str(file)).json()  # canonicalise and validate, as nnictl create does
    except Exception as e:  # noqa: BLE001  (AttributeError, ValueError, AssertionError...: each a refusal)
        check = (traceback.extract_tb(e.__traceback__)[-1].line or "").strip()
        why = " ".join(str(e).split()) or f"failed check `{check}`"
        raise ConfigError(f"{path}: NNI refuses it: {why}") from None
    finally:
        unset_base_path()  # NNI 3.0 leaves it set when loading fails: every later load here would fail
    return cfg


def platforms(cfg: Mapping[str, Any]) -> list[str]:
    """The config's training service platform(s) (a list for NNI's hybrid mode)."""
    services = cfg.get("trainingService")
    listed = services if isinstance(services, list) else [services]
    return [str(s.get("platform")) for s in listed if isinstance(s, Mapping)]


def default_bind(cfg: Mapping[str, Any]) -> str | None:
    """127.0.0.1 for the local training service; None (NNI's default: every interface) when workers elsewhere
    must reach the manager (remote, Kubernetes, AML, hybrid)."""
    return LOOPBACK if platforms(cfg) == ["local"] else None


def node_options(existing: str | None = None) -> str:
    """``NODE_OPTIONS`` that loads ``mat/loopback.js`` into a node process, after the ``existing`` options."""
    path = str(LOOPBACK_JS)
    require = f'--require "{path}"' if " " in path else f"--require {path}"
    return f"{existing} {require}" if existing else require


def manager_env(bind: str | None, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for ``nnictl``: with ``bind``, NNI's manager (it inherits it) listens on that address.

    Args:
        bind: an address (``127.0.0.1``, ``0.0.0.0``, ``::``, a LAN address), or None to leave NNI's default.
        env: the environment to start from (default: this process's).
    """
    out = dict(os.environ if env is None else env)
    if bind is not None:
        out["NODE_OPTIONS"] = node_options(out.get("NODE_OPTIONS"))
        out[BIND_ENV] = bind
    return out


def is_loopback(address: str | None) -> bool:
    """Whether ``address`` is reachable from this machine only (``127.x``, ``::1``, ``localhost``)."""
    return address is not None and (address.startswith("127.") or address in ("::1", "localhost"))


def nnictl() -> str:
    """Path of ``nnictl``, next to this interpreter first (a venv), else on PATH."""
    from pathlib import Path

    here = Path(sys.executable).parent / "nnictl"
    found = str(here) if here.exists() else shutil.which("nnictl")
    if not found:
        raise ExperimentError("nnictl not found: install the nni extra (`pip install 'mat-harness[nni]'`)")
    return found


def create(config: str, port: int, timeout: float = 120, attempts: int = 3,
           env: Mapping[str, str] | None = None, bind: str | None = AUTO) -> str:
    """``nnictl create --config CONFIG --port PORT``; returns the experiment id.

    The manager listens on ``bind`` (:func:`manager_env`): by default (``auto``) 127.0.0.1 for the local
    training service and every interface for the others (:func:`default_bind`); None leaves NNI's default.

    NNI 3.0 gives its web server 3 seconds to answer (``nni.experiment.launcher._check_rest_server``) and
    gives up otherwise ("Create experiment failed: ... check-status ... Connection refused", or "Expecting
    value" when it answered but not yet with JSON), killing the server it started; on a machine busy with
    other trials that happens (seen here beside two study trials). Such a start is retried, up to
    ``attempts`` starts in all (each a new experiment id; the failed one's folder stays, never started).

    Args:
        env: the environment for nnictl (default: this process's).
        bind: the address the manager listens on, ``auto``, or None (NNI's default).

    Raises:
        ConfigError: the config is missing or invalid (:func:`load_config`).
        ExperimentError: an installed package that makes nnictl hang
            (:func:`trials.nni_env.nni_dependency_problem`), nnictl exits non-zero, prints no experiment id,
            or does not return within ``timeout`` seconds (its output is in the message).
    """
    problem = nni_env.nni_dependency_problem()
    if problem:
        raise ExperimentError(problem)
    out, code = "", 0
    address = default_bind(load_config(config)) if bind == AUTO else bind
    for attempt in range(1, attempts + 1):
        try:
            proc = subprocess.run(
                [nnictl(), "create", "--config", config, "--port", str(port)],
                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                env=manager_env(address, env),
            )
        except subprocess.TimeoutExpired as e:
            said = ANSI.sub("", _text(e.stdout) + _text(e.stderr)).strip()
            raise ExperimentError(
                f"nnictl create did not return within {timeout:g} s (NNI's manager may be up: `nnictl stop "
                f"--port {port}` stops it). It said:\n{said or '(nothing)'}") from None
        out, code = ANSI.sub("", proc.stdout + proc.stderr), proc.returncode
        m = re.search(r"Experiment ID:\s*(\w+)", out) or re.search(r"experiment id:?\s*(\w+)", out, re.I)
        if code == 0 and m:
            return m.group(1)
        if not SLOW_START.search(out) or attempt == attempts:
            break
        print(f"nnictl create: NNI's web server did not answer within its 3 s (a busy machine?); "
              f"starting again ({attempt + 1}/{attempts})", file=sys.stderr, flush=True)
    raise ExperimentError(f"nnictl create failed (exit {code}):\n{out}")


def _text(out: str | bytes | None) -> str:
    """A subprocess's captured output as text (a timeout leaves bytes, or None)."""
    if out is None:
        return ""
    return out.decode(errors="replace") if isinstance(out, bytes) else out


def port_in_use(port: int) -> bool:
    """Whether something accepts connections on ``port`` of this machine (NNI would refuse to start there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((LOOPBACK, port)) == 0


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


def exposure_warning(bind: str | None, port: int, cfg: Mapping[str, Any]) -> str | None:
    """The warning to print when the manager is reachable from other machines, else None."""
    if is_loopback(bind):
        return None
    services = "/".join(platforms(cfg))
    where = f"{bind}:{port}" if bind is not None else \
        f"every interface (port {port}; the {services} training service's workers must reach it)"
    return (f"warning: NNI's web UI and REST API listen on {where}, without authentication: whoever reaches "
            "it can stop, change and read this experiment. Restrict access (firewall, SSH tunnel): "
            f"{SECURITY}")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``run CONFIG`` starts, waits and summarises; exit 0 only if every trial SUCCEEDED (2: bad config).
    ``node-options`` prints the ``NODE_OPTIONS`` that keep a plain ``nnictl create`` on 127.0.0.1."""
    p = argparse.ArgumentParser(prog="python -m trials.experiment", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="nnictl create, then wait for the end and print a summary")
    r.add_argument("config", help="NNI experiment config (YAML), e.g. nni_configs/quickstart.yml")
    r.add_argument("--port", type=int, default=8080, help="web UI / REST port (default 8080)")
    r.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the end (default 3600)")
    r.add_argument("--stop", action="store_true", help="nnictl stop the experiment at the end (default: keep "
        "the web UI up)")
    r.add_argument("--bind", metavar="ADDRESS", default=None, choices=BIND_CHOICES,
                   help="where NNI's web UI and REST API listen: 127.0.0.1 (the default for the local "
                   "training service), 0.0.0.0 (every IPv4 interface) or :: (every interface; the default "
                   "for the other training services). Anything but 127.0.0.1 opens them to the network, "
                   f"without authentication: {SECURITY}")
    sub.add_parser("node-options", help="print NODE_OPTIONS for a plain `nnictl create` on 127.0.0.1: "
                   'NODE_OPTIONS="$(python -m trials.experiment node-options)" nnictl create ...')
    args = p.parse_args(argv)
    if args.cmd == "node-options":
        print(node_options(os.environ.get("NODE_OPTIONS")))
        return 0
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if port_in_use(args.port):
        print(f"error: port {args.port} is in use (an NNI experiment left running? `nnictl experiment list`, "
              f"then `nnictl stop ID`), or pass another --port", file=sys.stderr)
        return 2
    bind = args.bind if args.bind is not None else default_bind(cfg)
    warning = exposure_warning(bind, args.port, cfg)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    try:
        exp = create(args.config, args.port, bind=bind)
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    host = bind if bind is not None and bind not in ("0.0.0.0", "::") else LOOPBACK
    url = f"http://[{host}]:{args.port}" if ":" in host else f"http://{host}:{args.port}"
    print(f"experiment {exp} started; web UI: {url}  (stop it with: nnictl stop {exp})", flush=True)
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
