"""Real NNI experiments: ``nnictl create`` on the tiny model and data, checked through NNI's REST API,
the trial records and the web UI in a real browser.

Each experiment lives in its own ``HOME`` and port and is always stopped (``nnictl stop``) at the end.

About "the parameters a trial used": NNI 3.0 can attribute a concurrent trial's parameters to another
trial in ``/trial-jobs`` ``hyperParameters`` (microsoft/nni#5726, #5693; seen here with 2 trials at once),
so that field cannot be the oracle. The metric records carry the right ``parameterId``; joined to the
parameter sets NNI issued, they say which parameters each trial really ran with. The tests check the
trial's record (``trial.json``) and the trial's own log of what it received against that, and that the
issued parameter sets and the recorded ones are the same sets. The same defect makes plain TPE's
dispatcher crash (the experiment then hangs in RUNNING), so these experiments run ``trials/safe_tpe.py``,
as the shipped configs do.
"""

from __future__ import annotations

import ast
import math
import os
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from mat.spec.records import read_record
from tests.helpers import make_tiny_glue_dir, make_tiny_model_dir
from tests.nni_support import (
    ARTIFACTS,
    REPO,
    SFTP_SERVER,
    SSHD,
    Experiment,
    decode,
    isolate,
    running_experiment,
    sshd,
    trial_command,
    web_ui_trials,
    write_config,
)

pytestmark = pytest.mark.nni

ALIASES = {"sampling_times": ("sampling_times_delta", "sampling_times_theta")}
SPACE = {  # 8 points, 4 trials: cheap MAT settings
    "sampling_times": {"_type": "choice", "_value": [1, 2]},
    "lambda_s": {"_type": "choice", "_value": [0.5, 2.0]},
    "sampling_step_theta": {"_type": "choice", "_value": [1e-4, 3e-4]},
}
TIMEOUT = 300
# What the shipped configs use: plain TPE can hang at concurrency > 1 (see trials/safe_tpe.py).
SAFE_TPE = {"codeDirectory": str(REPO / "trials"), "className": "safe_tpe.SafeTpeTuner", "classArgs": {"optimize_mode": "maximize"}}


@dataclass
class Tiny:
    model: Path
    data: Path

    def flags(self) -> list[str]:
        """Run settings of every test trial: tiny SST-2, 1 epoch, 2 evaluations, CPU."""
        return ["--task", "sst2", "--model", str(self.model), "--method", "mat", "--data_dir", str(self.data),
                "--max_length", "32", "--epochs", "1", "--batch_size", "16", "--eval_times", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    root = tmp_path_factory.mktemp("tiny")
    return Tiny(model=make_tiny_model_dir(root / "model"), data=make_tiny_glue_dir(root / "data"))


def local_config(root: Path, tiny: Tiny, name: str, trials: int, **extra: Any) -> Path:
    import json

    (root / "space.json").write_text(json.dumps(SPACE))
    return write_config(root / "config.yml", {
        "experimentName": name,
        "searchSpaceFile": str(root / "space.json"),
        "trialCommand": trial_command(*tiny.flags()),
        "trialCodeDirectory": str(REPO),
        "trialConcurrency": 2,
        "maxTrialNumber": trials,
        "tuner": SAFE_TPE,
        "trainingService": {"platform": "local"},
        **extra,
    })


@dataclass
class Finished:
    """A finished experiment, its REST answers read once."""

    exp: Experiment
    status: str
    jobs: list[dict[str, Any]]
    metrics: list[dict[str, Any]]

    def issued(self) -> dict[str, dict[str, Any]]:
        """parameter_id (as NNI writes it in metrics: a string) -> the parameter set NNI issued with it."""
        import json

        out = {}
        for job in self.jobs:
            for hp in job["hyperParameters"]:
                d = json.loads(hp)
                out[str(d["parameter_id"])] = d["parameters"]
        return out

    def final_parameter_id(self, trial_id: str) -> str:
        [final] = [m for m in self.metrics if m["trialJobId"] == trial_id and m["type"] == "FINAL"]
        return str(final["parameterId"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny: Tiny) -> Iterator[Finished]:
    root = tmp_path_factory.mktemp("nni_local")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, root / "home")
        with running_experiment(local_config(root, tiny, "e2e-local", trials=4), root / "home") as exp:
            status = exp.wait(TIMEOUT)
            yield Finished(exp, status, exp.get("trial-jobs"), exp.get("metric-data"))  # kept running for the web UI


def assert_params_applied(sent: dict[str, Any], used: dict[str, Any], where: str) -> None:
    """Every parameter NNI sent is in the record's resolved ``params`` (aliases set all their targets)."""
    for key, value in sent.items():
        for target in ALIASES.get(key, (key,)):
            assert math.isclose(used[target], value) if isinstance(value, float) else used[target] == value, (
                f"{where}: sent {key}={value!r}, recorded {target}={used[target]!r}"
            )
    if "sampling_step_theta" in sent:
        assert math.isclose(used["learning_rate"], sent["sampling_step_theta"]), "gamma_theta is the learning rate"


def received(trial_dir: Path) -> dict[str, Any]:
    """The parameters the trial logged as received from NNI (``mat.trial`` logs them at start, on stderr)."""
    text = "\n".join((trial_dir / n).read_text(errors="replace") for n in ("trial.stderr", "trial.log", "trial.stdout") if (trial_dir / n).is_file())
    m = re.search(r"NNI trial \w+ of experiment \w+, parameters (\{.*\})", text)
    assert m, f"no 'parameters' log line in {trial_dir}"
    return ast.literal_eval(m.group(1))


def test_every_trial_succeeds_with_intermediate_and_final_results(finished: Finished) -> None:
    assert finished.status == "DONE", finished.exp.diagnostics()
    assert len(finished.jobs) == 4
    assert {j["status"] for j in finished.jobs} == {"SUCCEEDED"}, finished.exp.diagnostics()
    kinds = Counter((m["trialJobId"], m["type"]) for m in finished.metrics)
    for job in finished.jobs:
        tid = job["trialJobId"]
        final = decode(job["finalMetricData"][0]["data"])
        assert isinstance(final["default"], float) and 0.0 <= final["default"] <= 100.0
        assert set(final) == {"default", "accuracy"}, "the web UI shows every sub-metric"
        assert kinds[(tid, "FINAL")] == 1, "exactly one final result"
        assert kinds[(tid, "PERIODICAL")] >= 2, "an intermediate result per evaluation (--eval_times 2)"


def test_concurrent_trials_share_the_cores(finished: Finished) -> None:
    """trialConcurrency 2: each trial takes cores // 2 threads (at least 1), read from the experiment's store."""
    cores = len(os.sched_getaffinity(0))
    want = f"using {max(1, cores // 2)} CPU thread"
    for job in finished.jobs:
        text = (finished.exp.trial_dir(job["trialJobId"]) / "trial.stderr").read_text(errors="replace")
        assert f"{want}" in text and f"({cores} cores / trialConcurrency 2)" in text, text[-2000:]


def test_records_hold_the_parameters_each_trial_used(finished: Finished) -> None:
    issued = finished.issued()
    recorded = []
    for job in finished.jobs:
        tid = job["trialJobId"]
        trial_dir = finished.exp.trial_dir(tid)
        record = read_record(trial_dir / "trial.json")
        assert (record.status, record.trial_id, record.experiment_id) == ("SUCCEEDED", tid, finished.exp.id)
        sent = issued[finished.final_parameter_id(tid)]  # the parameters behind this trial's metrics
        assert received(trial_dir) == sent, f"{tid}: the trial received other parameters than its metrics say"
        assert_params_applied(sent, record.params, tid)
        final = decode(job["finalMetricData"][0]["data"])
        assert record.best is not None and math.isclose(final["default"], record.best.score)
        periodical = [decode(m["data"]) for m in finished.metrics if m["trialJobId"] == tid and m["type"] == "PERIODICAL"]
        assert [p["default"] for p in periodical] == pytest.approx([e.score for e in record.evals])
        recorded.append(tuple(sorted(sent.items())))
    # The same parameter sets ran as NNI issued, whatever trial /trial-jobs attributes them to.
    assert Counter(recorded) == Counter(tuple(sorted(p.items())) for p in issued.values())
    assert len(set(recorded)) == 4, "TPE deduplicates: 4 different points"


def test_web_ui_lists_every_trial(finished: Finished) -> None:
    ids = [j["trialJobId"] for j in finished.jobs]
    shot = ARTIFACTS / "nni_webui_detail.png"
    with web_ui_trials(finished.exp.url) as page:
        from playwright.sync_api import expect

        expect(page.locator(".ms-DetailsRow")).to_have_count(len(ids), timeout=30_000)
        for tid in ids:
            expect(page.get_by_text(tid, exact=True)).to_be_visible()
        expect(page.get_by_text("SUCCEEDED", exact=True)).to_have_count(len(ids))
        table = page.locator(".ms-DetailsList").inner_text()
        for job in finished.jobs:  # the UI rounds metrics to 6 decimals
            default = decode(job["finalMetricData"][0]["data"])["default"]
            shown = f"{default:.6f}".rstrip("0").rstrip(".") + " (FINAL)"
            assert shown in table, f"{shown!r} not in the trials table"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


BAD = [
    ({"not_a_key": 1.0}, r"unknown parameter 'not_a_key'"),
    ({"sampling_times": -1}, r"bad parameters: sampling_times=-1 is out of range \[0, 10000\]"),
    ({"lambda_s": "three"}, r"bad parameters: lambda_s='three' must be a number, not a str"),
]
GOOD = [{"sampling_times": 1, "lambda_s": 1.0}, {"sampling_times": 2, "lambda_s": 0.5}]


def test_bad_parameters_fail_their_trials_and_the_experiment_goes_on(tmp_path: Path, tiny: Tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    script = [GOOD[0], BAD[0][0], BAD[1][0], GOOD[1], BAD[2][0]]
    tuner = {
        "codeDirectory": str(REPO / "tests" / "fixtures" / "nni"),
        "className": "scripted_tuner.ScriptedTuner",
        "classArgs": {"parameters": script, "optimize_mode": "maximize"},
    }
    isolate(monkeypatch, tmp_path / "home")
    config = local_config(tmp_path, tiny, "e2e-bad-params", trials=len(script), tuner=tuner)
    with running_experiment(config, tmp_path / "home") as exp:
        assert exp.wait(TIMEOUT) == "DONE", exp.diagnostics()
        jobs = exp.get("trial-jobs")
    assert Counter(j["status"] for j in jobs) == {"SUCCEEDED": 2, "FAILED": 3}, exp.diagnostics()
    errors = []
    for job in jobs:
        trial_dir = exp.trial_dir(job["trialJobId"])
        record = read_record(trial_dir / "trial.json")
        assert record.status == job["status"]
        if job["status"] == "FAILED":
            assert record.error and record.error in (trial_dir / "trial.stderr").read_text(errors="replace"), "the reason is in stderr too"
            assert not job.get("finalMetricData"), "a failed trial reports no final result"
            errors.append(record.error)
    for _, pattern in BAD:  # each bad parameter set failed with its own reason
        assert sum(bool(re.search(pattern, e)) for e in errors) == 1, f"{pattern!r} not in exactly one of {errors}"


@pytest.mark.slow
def test_remote_training_service_over_ssh(tmp_path: Path, tiny: Tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    """NNI's remote training service against a private sshd on 127.0.0.1: upload, run, report, records."""
    if not SSHD.exists() or not SFTP_SERVER.exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("openssh-server is not installed (apt-get install -y openssh-server)")
    code = tmp_path / "code"  # what NNI uploads: the trial script and the package, nothing else
    for part in ("trials", "mat"):
        shutil.copytree(REPO / part, code / part, ignore=shutil.ignore_patterns("__pycache__"))
    isolate(monkeypatch, tmp_path / "home")
    with sshd(tmp_path / "sshd") as server:
        config = local_config(tmp_path, tiny, "e2e-remote", trials=4, trialCodeDirectory=str(code), trainingService={
            "platform": "remote",
            "machineList": [{
                "host": "127.0.0.1", "port": server.port, "user": server.user, "sshKeyFile": str(server.key),
                "pythonPath": str(Path(sys.executable).parent),  # the bin folder of the interpreter with nni and torch
            }],
        })
        with running_experiment(config, tmp_path / "home") as exp:
            assert exp.wait(TIMEOUT) == "DONE", exp.diagnostics()
            jobs, metrics = exp.get("trial-jobs"), exp.get("metric-data")
        assert [j["status"] for j in jobs] == ["SUCCEEDED"] * 4, exp.diagnostics()
        finished = Finished(exp, "DONE", jobs, metrics)
        issued = finished.issued()
        for job in jobs:
            tid = job["trialJobId"]
            remote_dir = server.home / "nni-experiments" / exp.id / "environments" / "remote-worker1" / "trials" / tid
            record = read_record(remote_dir / "trial.json")
            assert (record.status, record.trial_id, record.experiment_id) == ("SUCCEEDED", tid, exp.id)
            assert_params_applied(issued[finished.final_parameter_id(tid)], record.params, tid)
            assert isinstance(decode(job["finalMetricData"][0]["data"])["default"], float)
