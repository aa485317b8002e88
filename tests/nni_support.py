"""Helpers for tests that start real NNI experiments with ``nnictl``.

Every experiment runs with its own ``HOME`` (NNI keeps its experiment list and all results under
``$HOME/nni-experiments``), so test runs never see each other's experiments, and on its own free port.
:func:`running_experiment` always calls ``nnictl stop``, whatever the test did. Results are read the way a
user reads them: NNI's REST API (``/api/v1/nni/...``) and the files in the experiment folder.
"""

from __future__ import annotations

import contextlib
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

REPO = Path(__file__).resolve().parents[1]
TRIAL_SCRIPT = REPO / "trials" / "mat_trial.py"
NNICTL = (sys.executable, "-m", "nni.tools.nnictl.nnictl")
FINISHED = ("DONE", "STOPPED", "ERROR")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nni_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for ``nnictl`` and, through it, the trials (local trials inherit it).

    ``HOME`` is ``home``; the repo goes first on ``PYTHONPATH`` so trials import this checkout's ``mat``;
    one thread per trial, since trials run side by side on few cores; the Hugging Face libraries offline.
    """
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    env.update(extra)
    return env


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """Write an NNI experiment config (camelCase keys) as YAML."""
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def trial_command(*args: str, python: str = sys.executable) -> str:
    """``<python> trials/mat_trial.py <args>``: the interpreter by absolute path (pyenv shims are not used)."""
    import shlex

    return " ".join(shlex.quote(a) for a in (python, "trials/mat_trial.py", *args))


@dataclass
class Experiment:
    """A started experiment: its id, REST port and the ``HOME`` it lives in."""

    id: str
    port: int
    home: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dir(self) -> Path:
        return self.home / "nni-experiments" / self.id

    def get(self, api: str, timeout: float = 10.0) -> Any:
        """GET ``/api/v1/nni/<api>`` and parse the JSON."""
        with urllib.request.urlopen(f"{self.url}/api/v1/nni/{api}", timeout=timeout) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def status(self) -> str:
        return str(self.get("check-status")["status"])

    def trial_jobs(self) -> list[dict[str, Any]]:
        return list(self.get("trial-jobs"))

    def metric_data(self) -> list[dict[str, Any]]:
        return list(self.get("metric-data"))

    def trial_dir(self, trial_id: str, env_name: str = "local-env") -> Path:
        """Where a local trial ran: its ``NNI_OUTPUT_DIR`` (``trial.json``, ``trial.log``...)."""
        return self.dir / "environments" / env_name / "trials" / trial_id

    def wait(self, timeout: float, poll: float = 2.0) -> str:
        """Poll ``check-status`` until DONE/STOPPED/ERROR; return it.

        Raises:
            TimeoutError: still running after ``timeout`` seconds; the message holds the status, the trials'
                states and the end of NNI's logs.
        """
        deadline = time.monotonic() + timeout
        status = "?"
        while time.monotonic() < deadline:
            try:
                status = self.status()
            except (urllib.error.URLError, OSError):
                status = "UNREACHABLE"
            if status in FINISHED:
                return status
            time.sleep(poll)
        raise TimeoutError(f"experiment {self.id} still {status} after {timeout:.0f} s\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        """Trial states and the end of NNI's manager and dispatcher logs, for failure messages."""
        lines = []
        with contextlib.suppress(Exception):
            for job in self.trial_jobs():
                lines.append(f"trial {job.get('trialJobId')}: {job.get('status')}")
        for name in ("nnimanager.log", "dispatcher.log"):
            log = self.dir / "log" / name
            if log.is_file():
                tail = log.read_text(errors="replace").splitlines()[-15:]
                lines += [f"--- {name}", *tail]
        return "\n".join(lines)


def final_metric(job: Mapping[str, Any]) -> Any:
    """A trial job's final metric, decoded (NNI stores a JSON string of a JSON string)."""
    data = job["finalMetricData"][0]["data"]
    while isinstance(data, str):
        data = json.loads(data)
    return data


def metric_value(entry: Mapping[str, Any]) -> Any:
    """One ``metric-data`` entry's value, decoded."""
    data = entry["data"]
    while isinstance(data, str):
        data = json.loads(data)
    return data


def hyper_parameters(job: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters NNI sent to a trial job (``hyperParameters[0]``, a JSON string)."""
    return dict(json.loads(job["hyperParameters"][0])["parameters"])


def start_experiment(config: Path, home: Path, env: Mapping[str, str], port: int | None = None) -> Experiment:
    """``nnictl create --config <config> --port <port>``; return the started experiment.

    Raises:
        RuntimeError: ``nnictl`` failed or printed no experiment id; the message holds its output.
    """
    port = port or free_port()
    proc = subprocess.run(
        [*NNICTL, "create", "--config", str(config), "--port", str(port)],
        env=dict(env), capture_output=True, text=True, timeout=180,
    )
    out = _ANSI.sub("", proc.stdout + proc.stderr)
    match = re.search(r"Experiment ID: (\w+)", out)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"nnictl create failed (exit {proc.returncode}):\n{out}")
    return Experiment(id=match.group(1), port=port, home=home, env=dict(env))


def stop_experiment(exp: Experiment) -> None:
    """``nnictl stop <id>``; never raises (teardown)."""
    with contextlib.suppress(Exception):
        subprocess.run([*NNICTL, "stop", exp.id], env=exp.env, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def running_experiment(config: Path, home: Path, env: Mapping[str, str]) -> Iterator[Experiment]:
    """Start an experiment and stop it on exit, whatever happened in between."""
    exp = start_experiment(config, home, env)
    try:
        yield exp
    finally:
        stop_experiment(exp)


def chromium_path() -> str | None:
    """Debian's Chromium (``apt-get install chromium``), or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
)
