"""Helpers for tests that start real NNI experiments (``nnictl``), and the servers they need.

Starting, waiting and stopping go through :mod:`trials.experiment`, the same code ``make quickstart`` runs.
Every experiment gets its own ``HOME`` (NNI keeps its experiment list and all results under
``$HOME/nni-experiments``), set with pytest's ``monkeypatch`` so ``nnictl`` and the trials it starts
inherit it, and its own free port; :func:`running_experiment` always calls ``nnictl stop``.
Results are read as a user reads them: NNI's REST API and the files in the experiment folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest
import yaml

from trials import experiment as nni_runner

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolate(mp: pytest.MonkeyPatch, home: Path) -> None:
    """Point ``HOME`` at ``home`` for ``nnictl`` and the local trials it starts (they inherit it).

    Also: the Hugging Face libraries offline (tests never touch the network). ``OMP_NUM_THREADS`` is unset:
    each trial sizes its threads from the experiment's ``trialConcurrency`` (trials/mat_trial.py), as a
    user's trials do.
    """
    home.mkdir(parents=True, exist_ok=True)
    for key, value in {
        "HOME": str(home), "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
    }.items():
        mp.setenv(key, value)
    mp.delenv("MAT_DATA_DIR", raising=False)  # tests pass --data_dir explicitly
    mp.delenv("OMP_NUM_THREADS", raising=False)


def write_config(path: Path, config: Mapping[str, Any]) -> Path:
    """Write an NNI experiment config (camelCase keys) as YAML."""
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def trial_command(*flags: str, python: str = sys.executable) -> str:
    """``<python> trials/mat_trial.py <flags>``, the interpreter by absolute path (no pyenv shims)."""
    return " ".join(shlex.quote(w) for w in (python, "trials/mat_trial.py", *flags))


def decode(data: Any) -> Any:
    """NNI metric data: a JSON string of a JSON string of the reported dict."""
    while isinstance(data, str):
        data = json.loads(data)
    return data


@dataclass
class Experiment:
    """A started experiment: id, REST port and the ``HOME`` it lives in."""

    id: str
    port: int
    home: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dir(self) -> Path:
        return self.home / "nni-experiments" / self.id

    def get(self, api: str) -> Any:
        return nni_runner.rest(self.port, api)

    def trial_dir(self, trial_id: str) -> Path:
        """A local trial's folder (its ``NNI_OUTPUT_DIR``: ``trial.json``, ``trial.stderr``...)."""
        return self.dir / "environments" / "local-env" / "trials" / trial_id

    def wait(self, timeout: float) -> str:
        """Wait until DONE/STOPPED/ERROR with every trial finished; the failure message has NNI's logs."""
        try:
            return nni_runner.wait(self.port, timeout, echo=False)
        except nni_runner.ExperimentError as e:
            raise nni_runner.ExperimentError(f"{e}\n{self.diagnostics()}") from None

    def diagnostics(self) -> str:
        """Trial states and the end of NNI's manager and dispatcher logs."""
        lines = []
        with contextlib.suppress(Exception):
            lines += [f"trial {t['trialJobId']}: {t['status']}" for t in self.get("trial-jobs")]
        for name in ("nnimanager.log", "dispatcher.log"):
            log = self.dir / "log" / name
            if log.is_file():
                lines += [f"--- {name}", *log.read_text(errors="replace").splitlines()[-20:]]
        return "\n".join(lines)


@contextlib.contextmanager
def running_experiment(config: Path, home: Path) -> Iterator[Experiment]:
    """``nnictl create`` (via :func:`trials.experiment.create`) on a free port; ``nnictl stop`` on exit, always.

    ``HOME`` must already point at ``home`` (:func:`isolate`).
    """
    assert os.environ["HOME"] == str(home), "call isolate() first: nnictl finds its experiments under $HOME"
    port = free_port()
    exp = Experiment(id=nni_runner.create(str(config), port), port=port, home=home)
    try:
        yield exp
    finally:
        nni_runner.stop(exp.id)


def chromium() -> str | None:
    """Debian's Chromium (``apt-get install chromium``), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def web_ui_trials(url: str) -> Iterator[Any]:
    """The web UI's trial list (``<url>/detail``) in headless Chromium, its rows loaded: the Playwright page.

    Skips the test when Chromium is absent. Fonts and icons come from an unreachable CDN: it waits on rows.
    """
    exe = chromium()
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}/detail", timeout=60_000)
            page.wait_for_selector(".ms-DetailsRow", timeout=60_000)
            yield page
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------------- sshd

SSHD = Path("/usr/sbin/sshd")
SFTP_SERVER = Path("/usr/lib/openssh/sftp-server")


@dataclass
class SSHServer:
    """A private sshd on 127.0.0.1: its port, the client key it accepts, and the HOME its sessions get."""

    port: int
    user: str
    key: Path
    home: Path


@contextlib.contextmanager
def sshd(root: Path) -> Iterator[SSHServer]:
    """Run ``sshd -D`` with its own config, host key, client key and port; stop it (by its pid) on exit.

    Sessions get ``HOME=<root>/home`` (``SetEnv``), so NNI's remote-side files stay under ``root``; the
    user is the current one (root in CI), key login only.
    """
    import getpass

    root.mkdir(parents=True, exist_ok=True)
    home = root / "home"
    home.mkdir(exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = free_port()
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host_key'}", f"PidFile {root / 'sshd.pid'}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", f"AuthorizedKeysFile {root / 'authorized_keys'}", "StrictModes no",
        f"SetEnv HOME={home}", f"Subsystem sftp {SFTP_SERVER}", "",
    ]))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation dir
    log = open(root / "sshd.log", "w")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text()}")
            time.sleep(0.2)
        yield SSHServer(port=port, user=getpass.getuser(), key=root / "client_key", home=home)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        log.close()


# ------------------------------------------------------------------------------------- stop / resume


def resume(exp: Experiment, timeout: float = 120) -> None:
    """``nnictl resume <id> --port <port>``: a stopped experiment runs again, on its own port.

    NNI 3.0 re-dispatches the trials that were RUNNING or WAITING at the stop under their own trial ids
    (docs/resume.md). ``HOME`` must still point at ``exp.home``.

    Raises:
        ExperimentError: nnictl exits non-zero (its output is in the message).
    """
    assert os.environ["HOME"] == str(exp.home), "nnictl finds its experiments under $HOME"
    proc = subprocess.run(
        [nni_runner.nnictl(), "resume", exp.id, "--port", str(exp.port)],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
    )
    if proc.returncode != 0:
        out = nni_runner.ANSI.sub("", proc.stdout + proc.stderr)
        raise nni_runner.ExperimentError(f"nnictl resume {exp.id} failed (exit {proc.returncode}):\n{out}")


def wait_for(condition: Any, timeout: float, what: str, poll: float = 0.5) -> Any:
    """Call ``condition()`` until it returns something truthy (returned); ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)


RESUMABLE_SCRIPT_TUNER = '''\
"""Hands out a fixed list of parameter sets in order, each once, across ``nnictl resume``.

A resumed experiment starts a new tuner; this one keeps how many sets it issued in NNI's checkpoint
folder (``$NNI_CHECKPOINT_DIRECTORY``), so it goes on where it stopped. Written by tests/nni_support.py.
"""
import json
import os
from pathlib import Path

from nni import NoMoreTrialError
from nni.tuner import Tuner


class ResumableScriptedTuner(Tuner):
    def __init__(self, parameters, optimize_mode="maximize"):
        self.parameters = [dict(p) for p in parameters]
        self.optimize_mode = optimize_mode
        self.state = Path(os.environ.get("NNI_CHECKPOINT_DIRECTORY") or ".") / "scripted_tuner_issued.json"
        self.issued = json.loads(self.state.read_text()) if self.state.is_file() else 0

    def generate_parameters(self, parameter_id, **kwargs):
        if self.issued >= len(self.parameters):
            raise NoMoreTrialError("the script is exhausted")
        params = self.parameters[self.issued]
        self.issued += 1
        self.state.write_text(json.dumps(self.issued))
        return params

    def receive_trial_result(self, parameter_id, parameters, value, **kwargs):
        pass

    def update_search_space(self, search_space):
        pass
'''


def resumable_scripted_tuner(folder: Path, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Write :data:`RESUMABLE_SCRIPT_TUNER` into ``folder``; return the ``tuner`` config that uses it.

    Unlike ``tests/fixtures/nni/scripted_tuner.py`` (which starts its list over in a resumed experiment),
    it issues every set once over the experiment's life.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "resumable_scripted_tuner.py").write_text(RESUMABLE_SCRIPT_TUNER)
    return {
        "codeDirectory": str(folder),
        "className": "resumable_scripted_tuner.ResumableScriptedTuner",
        "classArgs": {"parameters": parameters, "optimize_mode": "maximize"},
    }
