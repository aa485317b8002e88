"""NNI's web UI and REST API stay on 127.0.0.1 for the local training service (``trials.experiment``), and a bad
experiment config is one line naming the file and the problem.

NNI 3.0's manager (a node process) listens on every interface and has no option to change that; the harness
loads ``mat/loopback.js`` into it through ``NODE_OPTIONS``. Checked three ways: the shim on its own in NNI's node
(the listen forms NNI uses, ``MAT_NNI_BIND``, TensorBoard's ``--bind_all``); a real experiment's listening
socket and a connection to this machine's non-loopback address, which must be refused; and the CLI's choices.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from mat.spec.records import read_record
from tests.helpers import make_tiny_model_dir
from tests.nni_support import REPO, isolate, running_experiment, trial_command, write_config
from trials import experiment

CONFIGS = sorted((REPO / "nni_configs").glob("*.yml"))


def node() -> str:
    import nni_node  # the node.js NNI ships and runs its manager with

    return str(Path(nni_node.__path__[0]) / "node")


SERVERS = """
const http = require('http'), net = require('net');
const make = [
  () => http.createServer().listen(0),                 // NNI 3.0's web UI and REST API: express app.listen(port)
  () => http.createServer().listen(0, () => {}),
  () => http.createServer().listen({ port: 0 }),
  () => http.createServer().listen(0, '0.0.0.0'),      // a host named by the program is kept
  () => net.createServer().listen(),
];
const seen = [];
for (const m of make) {
  const s = m();
  s.on('listening', () => { seen.push(s.address().address); if (seen.length === make.length) { console.log(JSON.stringify(seen)); process.exit(0); } });
}
"""


def _addresses(env: dict[str, str]) -> list[str]:
    out = subprocess.run([node(), "-e", SERVERS], capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    return sorted(json.loads(out))


def test_the_shim_binds_host_less_servers_to_the_address_asked() -> None:
    base = {k: v for k, v in os.environ.items() if k not in ("NODE_OPTIONS", experiment.BIND_ENV)}
    assert _addresses(base).count("0.0.0.0") + _addresses(base).count("::") == 5, "node's default: every interface"
    assert _addresses(experiment.manager_env(experiment.LOOPBACK, base)) == ["0.0.0.0", "127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"]
    assert _addresses(experiment.manager_env("0.0.0.0", base)) == ["0.0.0.0"] * 5
    assert _addresses(experiment.manager_env(None, base)) == _addresses(base), "no bind: NNI's default, untouched"


def test_the_shim_gives_tensorboard_a_host_instead_of_bind_all(tmp_path: Path) -> None:
    fake = tmp_path / "tensorboard"
    fake.write_text("#!/bin/sh\necho \"$@\"\n")
    fake.chmod(0o755)
    env = experiment.manager_env(experiment.LOOPBACK, {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    script = ("const cp = require('child_process');"  # as NNI 3.0's nniTensorboardManager starts it
              "(0, cp.spawn)('tensorboard', ['--bind_all --logdir_spec=1-abc:/x', '--port=6006'], {shell: true, stdio: 'inherit'});")
    out = subprocess.run([node(), "-e", script], capture_output=True, text=True, env=env, timeout=60, check=True).stdout
    assert out.strip() == "--host=127.0.0.1 --logdir_spec=1-abc:/x --port=6006"


def test_the_shim_ships_with_the_package() -> None:
    from setuptools.config.setupcfg import read_configuration

    data = read_configuration(str(REPO / "setup.cfg"))["options"]["package_data"]
    assert "loopback.js" in data["mat"] and experiment.LOOPBACK_JS == REPO / "mat" / "loopback.js"
    assert experiment.LOOPBACK_JS.is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_local_configs_bind_to_loopback_and_the_others_keep_nnis_default(path: Path) -> None:
    cfg = yaml.safe_load(path.read_text())
    local = cfg["trainingService"]["platform"] == "local"
    assert experiment.default_bind(cfg) == ("127.0.0.1" if local else None)
    warning = experiment.exposure_warning(experiment.default_bind(cfg), 8080, cfg)
    assert (warning is None) == local
    if not local:
        assert "listen on every interface (port 8080; the" in warning and "docs/nni.md#security" in warning


@pytest.mark.parametrize(
    "text,problem",
    [
        (None, "no such file: expected an NNI experiment config (YAML)"),
        ("a: [1, 2\n", "not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
        ("- 1\n- 2\n", "expected a mapping of NNI config keys (trialCommand, trainingService, ...), got list"),
        ("trialCommand: x\nsearchSpace: {}\ntuner: {name: Random}\n",
         "no trainingService with a platform (e.g. trainingService: {platform: local})"),
        ("trialCommand: x\ntrialConcurency: 1\nsearchSpace: {}\ntuner: {name: Random}\ntrainingService: {platform: local}\n",
         "NNI refuses it: ExperimentConfig does not have field(s) trialconcurency"),
        ("trialCommand: x\ntrialConcurrency: 0\nsearchSpace: {}\ntuner: {name: Random}\ntrainingService: {platform: local}\n",
         "NNI refuses it: failed check `assert self.trial_concurrency > 0`"),
    ],
)
def test_a_missing_or_invalid_config_is_one_line_naming_file_and_problem(text: str | None, problem: str, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "exp.yml"
    if text is not None:
        path.write_text(text)
    assert experiment.main(["run", str(path), "--port", "8399"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err == f"error: {path}: {problem}\n"


def test_bind_opts_in_to_more_with_a_warning(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[Any] = []

    def create(config: str, port: int, bind: str | None = None) -> str:
        calls.append(bind)
        raise experiment.ExperimentError("stopped here by the test")

    monkeypatch.setattr(experiment, "create", create)
    quickstart = str(REPO / "nni_configs" / "quickstart.yml")
    assert experiment.main(["run", quickstart, "--port", "8399"]) == 1
    assert calls == ["127.0.0.1"] and "warning" not in capsys.readouterr().err
    assert experiment.main(["run", quickstart, "--port", "8399", "--bind", "0.0.0.0"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert calls[-1] == "0.0.0.0"
    assert err[0] == ("warning: NNI's web UI and REST API listen on 0.0.0.0:8399, without authentication: whoever reaches it "
                      "can stop, change and read this experiment. Restrict access (firewall, SSH tunnel): docs/nni.md#security")
    assert err[1] == "error: stopped here by the test"
    with pytest.raises(SystemExit) as e:  # one network address would lock nnictl out: it talks to localhost
        experiment.main(["run", quickstart, "--bind", "192.0.2.2"])
    assert e.value.code == 2 and "argument --bind: invalid choice: '192.0.2.2'" in capsys.readouterr().err


def _non_loopback_ipv4() -> list[str]:
    return [a.address for name, addrs in psutil.net_if_addrs().items() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


@pytest.mark.nni
def test_a_local_experiment_serves_on_loopback_only_and_a_trial_without_data_fails_naming_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("nnictl", path=str(Path(sys.executable).parent)) is None and shutil.which("nnictl") is None:
        pytest.skip("nnictl is not installed (pip install -e '.[nni]')")
    model = make_tiny_model_dir(tmp_path / "model")
    (tmp_path / "space.json").write_text(json.dumps({"seed": {"_type": "choice", "_value": [1]}}))
    config = write_config(tmp_path / "config.yml", {
        "experimentName": "loopback", "searchSpaceFile": str(tmp_path / "space.json"),
        "trialCommand": trial_command("--task", "sst2", "--model", str(model), "--method", "vanilla", "--device", "cpu"),
        "trialCodeDirectory": str(REPO), "trialConcurrency": 1, "maxTrialNumber": 1,
        "tuner": {"name": "GridSearch"}, "trainingService": {"platform": "local"},
    })
    isolate(monkeypatch, tmp_path / "home")  # also: no MAT_DATA_DIR, and the Hugging Face libraries offline
    with running_experiment(config, tmp_path / "home") as exp:
        listening = [c.laddr for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == exp.port]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        assert exp.get("check-status")["status"] in ("RUNNING", "DONE", "NO_MORE_TRIAL", "TUNER_NO_MORE_TRIAL")
        for ip in _non_loopback_ipv4():  # this machine's network addresses: nothing answers there
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((ip, exp.port), timeout=5).close()
        assert exp.wait(300) == "DONE", exp.diagnostics()
        (job,) = exp.get("trial-jobs")
        assert job["status"] == "FAILED"
        record = read_record(exp.trial_dir(job["trialJobId"]) / "trial.json")
    assert record.status == "FAILED" and record.error is not None
    assert "no local data folder (neither --data_dir nor $MAT_DATA_DIR is set)" in record.error
    assert "Set MAT_DATA_DIR or --data_dir" in record.error and "python -m mat.data prepare --out DIR" in record.error


def test_a_busy_port_is_one_line_naming_the_fix_before_nnictl_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """A port already taken (say by an experiment left running for its web UI) is refused in one line, exit 2,
    instead of nnictl's traceback ("Port 8080 is not idle")."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert experiment.port_in_use(port)
        rc = experiment.main(["run", str(REPO / "nni_configs" / "quickstart.yml"), "--port", str(port)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert f"port {port} is in use" in err[0] and "nnictl stop" in err[0] and "--port" in err[0]
    assert not experiment.port_in_use(port)  # closed again: free ports read as free
