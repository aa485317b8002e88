"""A component-ladder experiment under real NNI (issue 14): a good rung, an unknown rung and a contradicting
one, then the good trial's telemetry through NNI's own TensorBoard (REST API, and the web UI in Chromium).

One experiment in its own ``HOME`` and port, always stopped. The TensorBoard NNI starts is read through
TensorBoard's HTTP API (``/data/plugin/scalars/...``): its ``train/*`` scalars, averaged per evaluation
interval, must equal the trial record's ``telemetry``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from mat.spec.records import TrialRecord, read_record
from tests.helpers import make_tiny_glue_dir, make_tiny_model_dir
from tests.nni_support import (
    ARTIFACTS,
    REPO,
    Experiment,
    isolate,
    running_experiment,
    trial_command,
    web_ui_trials,
    write_config,
)

pytestmark = pytest.mark.nni

TIMEOUT = 300
TAG_FILTER = "input[placeholder='Filter tags (regex)']"  # TensorBoard's time-series tag filter
SCRIPT = [
    {"rung": "dropout_consistency", "seed": 1},
    {"rung": "matt", "seed": 1},  # unknown: fails with the valid names
    {"rung": "dropout_consistency", "sampling_times_delta": 2, "seed": 1},  # contradicts the rung: fails with the reason
]


@dataclass
class LadderExperiment:
    exp: Experiment
    status: str
    jobs: list[dict[str, Any]]

    def record(self, trial_id: str) -> TrialRecord:
        return read_record(self.exp.trial_dir(trial_id) / "trial.json")

    @property
    def good(self) -> dict[str, Any]:
        [job] = [j for j in self.jobs if j["status"] == "SUCCEEDED"]
        return job


@pytest.fixture(scope="module")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LadderExperiment]:
    root = tmp_path_factory.mktemp("nni_ladder")
    model, data = make_tiny_model_dir(root / "model"), make_tiny_glue_dir(root / "data")
    flags = ["--task", "sst2", "--model", str(model), "--data_dir", str(data), "--method", "mat", "--max_length", "32",
             "--epochs", "1", "--batch_size", "16", "--eval_times", "2", "--device", "cpu", "--diagnostics",
             "--sampling_times_delta", "1", "--sampling_times_theta", "2", "--lambda_s", "1"]
    (root / "space.json").write_text(json.dumps({"rung": {"_type": "choice", "_value": ["dropout_consistency"]}}))
    config = write_config(root / "config.yml", {
        "experimentName": "e2e-ladder", "searchSpaceFile": str(root / "space.json"),
        "trialCommand": trial_command(*flags), "trialCodeDirectory": str(REPO), "trialConcurrency": 1,
        "maxTrialNumber": len(SCRIPT), "trainingService": {"platform": "local"},
        "tuner": {"codeDirectory": str(REPO / "tests" / "fixtures" / "nni"), "className": "scripted_tuner.ScriptedTuner",
                  "classArgs": {"parameters": SCRIPT, "optimize_mode": "maximize"}},
    })
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp, root / "home")
        mp.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")  # NNI runs `tensorboard`
        with running_experiment(config, root / "home") as exp:
            status = exp.wait(TIMEOUT)
            try:
                yield LadderExperiment(exp, status, exp.get("trial-jobs"))  # kept running for TensorBoard
            finally:
                with contextlib.suppress(OSError):
                    _request(exp.port, "tensorboard-tasks", method="DELETE")


def _request(port: int, path: str, body: Any = None, method: str = "GET") -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/nni/{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    return json.loads(text) if text else None


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode())


def test_bad_rungs_fail_their_trials_with_the_reason(ladder: LadderExperiment) -> None:
    assert ladder.status == "DONE", ladder.exp.diagnostics()
    assert Counter(j["status"] for j in ladder.jobs) == {"SUCCEEDED": 1, "FAILED": 2}, ladder.exp.diagnostics()
    errors = sorted(str(ladder.record(j["trialJobId"]).error) for j in ladder.jobs if j["status"] == "FAILED")
    assert any(re.search(r"unknown rung 'matt'\. Did you mean 'mat'\? Valid rungs: vanilla, inner_steps, sampling, "
                         r"dropout_consistency, mat, mat_visible_delta, r3f", e) for e in errors), errors
    assert any("rung 'dropout_consistency' sets sampling_times_delta = 0" in e for e in errors), errors
    good = ladder.record(ladder.good["trialJobId"])
    assert (good.params["rung"], good.params["sampling_times_delta"], good.params["adv_init_epsilon"]) == ("dropout_consistency", 0, 0.0)
    assert all(ev.telemetry["delta_own_kl"] == 0.0 and ev.telemetry["dropout_kl"] > 0 for ev in good.evals)


def _start_tensorboard(ladder: LadderExperiment) -> tuple[str, dict[str, Any]]:
    """Start NNI's TensorBoard on the good trial; wait until it serves scalars. Returns (url, its tags)."""
    task = _request(ladder.exp.port, "tensorboard", {"trials": ladder.good["trialJobId"]}, method="POST")
    url = f"http://127.0.0.1:{task['port']}"
    deadline = time.monotonic() + 90
    while True:
        with contextlib.suppress(OSError, ValueError):
            tags = _get_json(f"{url}/data/plugin/scalars/tags")
            if any("train/loss" in t for t in tags.values()):
                return url, tags
        detail = _request(ladder.exp.port, f"tensorboard/{task['id']}")
        assert detail["status"] != "ERROR", f"NNI's TensorBoard failed: {detail}"
        assert time.monotonic() < deadline, f"TensorBoard never served train/loss: {detail}"
        time.sleep(1.0)


def test_nni_tensorboard_serves_the_trials_telemetry(ladder: LadderExperiment) -> None:
    url, tags = _start_tensorboard(ladder)
    [run] = [r for r, t in tags.items() if "train/loss" in t]
    assert run.split("/")[0].endswith(ladder.good["trialJobId"]), "NNI names the run <sequence>-<trial id>"
    record = ladder.record(ladder.good["trialJobId"])
    for name in record.evals[0].telemetry:
        query = urllib.parse.urlencode({"run": run, "tag": f"train/{name}"})
        points = [(int(step), float(value)) for _wall, step, value in _get_json(f"{url}/data/plugin/scalars/scalars?{query}")]
        previous = 0
        for ev in record.evals:
            values = [v for s, v in points if previous < s <= ev.step]
            if name not in ev.telemetry:  # a norm measured every 10th step only: none in this interval
                assert values == [], (name, ev.step)
            else:
                assert ev.telemetry[name] == pytest.approx(sum(values) / len(values), rel=1e-5, abs=1e-12), (name, ev.step)
            previous = ev.step


def test_web_ui_opens_the_trials_tensorboard(ladder: LadderExperiment) -> None:
    tid = ladder.good["trialJobId"]
    shot = ARTIFACTS / "nni_webui_tensorboard.png"
    with web_ui_trials(ladder.exp.url) as page:
        from playwright.sync_api import expect

        row = page.locator(".ms-DetailsRow").filter(has_text=tid)
        row.locator(".ms-Checkbox-checkbox").click()  # the row's own check box, NNI's first column
        page.get_by_role("button", name="TensorBoard").first.click()  # the split button's main part
        # a new TensorBoard, or the one the REST test started for the same trial (run alone or after it)
        started = re.compile(r"You (are starting a new|had started this) TensorBoard with", re.IGNORECASE)
        expect(page.get_by_text(started)).to_be_visible(timeout=30_000)
        with page.expect_popup(timeout=60_000) as popup:
            page.get_by_role("button", name="Ok").click()  # opens http://<host>:<TensorBoard port>
        board = popup.value
        deadline = time.monotonic() + 90
        while True:  # TensorBoard takes a few seconds to start: reload until its tag filter is there
            with contextlib.suppress(Exception):
                board.reload(timeout=10_000)
                expect(board.locator(TAG_FILTER)).to_be_visible(timeout=10_000)
                break
            assert time.monotonic() < deadline, "the TensorBoard tab never loaded"
        board.locator(TAG_FILTER).fill("train/(loss|delta_norm)$")  # cards below the fold are not drawn: filter
        board.locator(TAG_FILTER).press("Escape")  # close the tag suggestions, which show the same names
        expect(board.get_by_text("Tags matching filter")).to_be_visible(timeout=30_000)
        titles = board.locator("tb-truncated-path").filter(visible=True)  # the cards' titles
        for tag in ("train/loss", "train/delta_norm"):
            expect(titles.filter(has_text=re.compile(f"^{tag}$"))).to_have_count(1, timeout=30_000)
        board.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
