"""Experiment-level faults: ``nnictl stop`` then ``nnictl resume`` of a real NNI 3.0 search loses no
finished trial, re-runs the interrupted ones from their checkpoints, and the analysis never counts a
partial trial as complete.

What NNI 3.0 does (docs/resume.md, read in its source and seen in these runs): ``nnictl stop`` ends the
NNI manager; the trials that were running lose their command channel (their next report fails) and get
SIGINT, and NNI records no end for them: their last event in ``db/nni.sqlite`` stays ``RUNNING``, and the
experiment profile gets an ``endTime``. ``nnictl resume`` re-dispatches exactly those trials, under the
same trial ids, into the same trial folders, with the same parameter records (``"parameter_source":
"resumed"``); ``maxTrialNumber`` counts each trial once. The trial checkpoints when NNI goes away
(``trials/mat_trial.py``), so its re-run continues from that checkpoint.

The unit tests below build NNI stores with the event sequences these runs produced (no nnictl needed).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from analysis.aggregate import trial_scores
from analysis.load import load_nni_experiment, read_nni_store, status_counts, trials
from mat.spec.records import RecordError, TrialRecord, read_record
from tests.helpers import make_tiny_glue_dir, make_tiny_model_dir
from tests.nni_support import (
    REPO,
    Experiment,
    decode,
    isolate,
    resumable_scripted_tuner,
    resume,
    running_experiment,
    trial_command,
    wait_for,
    write_config,
)
from trials import experiment as nni_runner

TIMEOUT = 240
STEPS_PER_EPOCH = 4  # tiny SST-2: 64 training examples, batch 16
LONG_EPOCHS = 45
LONG_STEPS = LONG_EPOCHS * STEPS_PER_EPOCH
MAX_TRIALS = 4
SCRIPT = [  # distinct lambda_s: a trial's parameters say which set it is
    {"epochs": 1, "lambda_s": 0.5},
    {"epochs": LONG_EPOCHS, "lambda_s": 1.0},  # the trial the stop catches mid-way
    {"epochs": 1, "lambda_s": 2.0},
    {"epochs": 1.5, "lambda_s": 3.0},
    # spare: a set the tuner hands out in the instant before the stop, before NNI submits it, is dropped
    {"epochs": 1, "lambda_s": 4.0},
]


def tiny_flags(model: Path, data: Path) -> list[str]:
    """Tiny SST-2, MAT with one inner step, an evaluation per epoch, a checkpoint every step."""
    return [
        "--task", "sst2", "--model", str(model), "--method", "mat", "--data_dir", str(data), "--max_length", "32",
        "--batch_size", "16", "--eval_times", "1", "--device", "cpu", "--sampling_times_delta", "1",
        "--sampling_times_theta", "1", "--checkpoint_every", "1", "--save_model",
    ]


def record_in(folder: Path) -> TrialRecord | None:
    try:
        return read_record(folder / "trial.json")
    except (OSError, RecordError):
        return None


def checkpoint_step(folder: Path) -> int | None:
    steps = [int(m.group(1)) for p in (folder / "checkpoints").glob("checkpoint-*.pt") if (m := re.search(r"-(\d+)\.pt$", p.name))]
    return max(steps) if steps else None


def stderr_of(folder: Path) -> str:
    path = folder / "trial.stderr"
    return path.read_text(errors="replace") if path.is_file() else ""


def same_params(sent: dict[str, Any], used: dict[str, Any]) -> bool:
    return all(math.isclose(float(used[k]), float(v)) for k, v in sent.items())


def weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model" / "model.safetensors"))


def mid_search(exp: Experiment) -> tuple[list[str], str, int] | None:
    """(succeeded trial ids, the long trial's id, its checkpoint step) once a trial SUCCEEDED while the long
    one runs with a checkpoint on disk; else None."""
    jobs = exp.get("trial-jobs")
    done = [j["trialJobId"] for j in jobs if j["status"] == "SUCCEEDED"]
    for job in jobs:
        folder = exp.trial_dir(job["trialJobId"])
        rec = record_in(folder)
        if job["status"] == "RUNNING" and rec is not None and rec.params["epochs"] == LONG_EPOCHS:
            step = checkpoint_step(folder)
            if done and step is not None:
                return done, job["trialJobId"], step
    return None


@pytest.mark.nni
def test_stop_then_resume_reruns_the_interrupted_trial_from_its_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, data = make_tiny_model_dir(tmp_path / "model"), make_tiny_glue_dir(tmp_path / "data")
    home = tmp_path / "home"
    isolate(monkeypatch, home)
    (tmp_path / "space.json").write_text(json.dumps({"lambda_s": {"_type": "choice", "_value": [0.5, 1.0, 2.0, 3.0, 4.0]}}))
    config = write_config(tmp_path / "config.yml", {
        "experimentName": "resume",
        "searchSpaceFile": str(tmp_path / "space.json"),
        "trialCommand": trial_command(*tiny_flags(model, data)),
        "trialCodeDirectory": str(REPO),
        "trialConcurrency": 2,
        "maxTrialNumber": MAX_TRIALS,
        "tuner": resumable_scripted_tuner(tmp_path / "tuner", SCRIPT),
        "trainingService": {"platform": "local"},
    })
    with running_experiment(config, home) as exp:
        # 1. Mid-search: one trial finished, the long one running with a checkpoint; stop the experiment.
        done, long_id, step_then = wait_for(lambda: mid_search(exp), TIMEOUT, "a SUCCEEDED trial beside the long one with a checkpoint")
        assert step_then < LONG_STEPS - 8, "the long trial is nearly done: it cannot show an interruption"
        ids_before = {j["trialJobId"] for j in exp.get("trial-jobs")}
        nni_runner.stop(exp.id)
        long_dir = exp.trial_dir(long_id)

        # 2. Stopped: the long trial checkpointed and says INTERRUPTED; NNI recorded no end for it.
        stopped = wait_for(lambda: (r := record_in(long_dir)) is not None and r.status != "RUNNING" and r, 60, "the long trial's record")
        assert stopped.status == "INTERRUPTED", f"{stopped.status}: {stopped.error}\n{stderr_of(long_dir)[-2000:]}"
        assert re.search(r"NNI became unreachable|stopped by SIG(INT|TERM)", stopped.error or ""), stopped.error
        assert 0 < stopped.train_steps < LONG_STEPS and stopped.best is not None
        assert checkpoint_step(long_dir) == stopped.train_steps, "a checkpoint of the very step it stopped at"
        store = read_nni_store(exp.dir / "db" / "nni.sqlite")
        assert store.ended, "a stopped experiment's profile has an endTime"
        last_event = store.events[store.events["trialJobId"] == long_id]["event"].iloc[-1]
        assert last_event == "RUNNING", "NNI 3.0 records no end for a trial the stop killed"

        df = load_nni_experiment(exp.id, home / "nni-experiments")
        per_trial = trials(df).set_index("trial")
        assert per_trial.index.is_unique and ids_before <= set(per_trial.index), "no trial lost"
        assert per_trial.loc[long_id, "status"] == "INTERRUPTED"
        assert all(per_trial.loc[t, "status"] == "SUCCEEDED" for t in done)
        counts = status_counts(df)
        assert counts["RUNNING"] == 0, "nothing runs in a stopped experiment"
        assert counts["INTERRUPTED"] >= 1 and counts["SUCCEEDED"] + counts["INTERRUPTED"] == len(per_trial), counts
        finished = set(per_trial.index[per_trial["status"] == "SUCCEEDED"])
        assert set(trial_scores(df)["trial"]) == finished, "only finished trials are scored (tables, figures)"
        assert (df[df["trial"] == long_id]["status"] == "INTERRUPTED").all(), "its best-so-far rows say INTERRUPTED"
        for tid in finished - set(done):  # finished its training just as the stop came: its record says so
            assert (rec := record_in(exp.trial_dir(tid))) is not None and rec.status == "SUCCEEDED"
        interrupted = set(per_trial.index[per_trial["status"] == "INTERRUPTED"])

        # 3. Resume: the interrupted trials run again under their own ids; the search completes.
        resume(exp)
        assert exp.wait(TIMEOUT) == "DONE", exp.diagnostics()
        jobs, metrics = exp.get("trial-jobs"), exp.get("metric-data")

    # Every trial exactly once, SUCCEEDED, with one parameter record and one final result.
    ids = [j["trialJobId"] for j in jobs]
    assert len(ids) == MAX_TRIALS == len(set(ids)) and ids_before <= set(ids), (ids_before, ids)
    assert {j["status"] for j in jobs} == {"SUCCEEDED"}
    assert Counter(m["trialJobId"] for m in metrics if m["type"] == "FINAL") == Counter(ids)
    # What each trial ran: its record, which agrees with the parameter record NNI first sent it (saved in its
    # folder). NNI files concurrent trials' parameters under each other's ids (microsoft/nni#5726) and
    # re-sends that filing on resume, so /trial-jobs may pair a trial with another's set; as a multiset the
    # sets NNI issued are the sets that ran.
    filed, ran = {}, {}
    for job in jobs:
        tid = job["trialJobId"]
        [hp] = job["hyperParameters"]  # a re-dispatched trial keeps its one parameter record
        filed[tid] = json.loads(hp)["parameters"]
        [final] = [m for m in metrics if m["trialJobId"] == tid and m["type"] == "FINAL"]
        rec = read_record(exp.trial_dir(tid) / "trial.json")
        first = json.loads((exp.trial_dir(tid) / "nni_parameters.json").read_text())
        assert first["trial_id"] == tid and same_params(first["parameters"], rec.params), (tid, first, rec.params)
        assert rec.status == "SUCCEEDED" and rec.trial_id == tid
        ran[tid] = {k: rec.params[k] for k in SCRIPT[0]}
        assert rec.train_steps == round(ran[tid]["epochs"] * STEPS_PER_EPOCH), "every trial trained its full length"
        assert math.isclose(decode(final["data"])["default"], rec.best.score)
    key = lambda p: json.dumps({k: float(v) for k, v in p.items()}, sort_keys=True)  # noqa: E731
    assert Counter(map(key, ran.values())) == Counter(map(key, filed.values())), "the sets NNI issued are the sets that ran"
    assert len(set(map(key, ran.values()))) == MAX_TRIALS, "no parameter set ran twice"
    assert set(map(key, ran.values())) <= set(map(key, SCRIPT))

    # The interrupted trial continued from its checkpoint, to the same weights as an uninterrupted run.
    log = stderr_of(long_dir)
    assert f"resumed from {long_dir / 'checkpoints' / f'checkpoint-{stopped.train_steps}.pt'}" in log, log[-3000:]
    assert "re-dispatched by `nnictl resume`" in log
    if not same_params(filed[long_id], ran[long_id]):  # NNI re-sent another trial's parameters (#5726)
        assert "continuing with the parameters it ran with" in log
    final_rec = read_record(long_dir / "trial.json")
    assert final_rec.train_steps == LONG_STEPS
    assert [e.step for e in final_rec.evals] == list(range(STEPS_PER_EPOCH, LONG_STEPS + 1, STEPS_PER_EPOCH)), "each evaluation once"
    assert all(interrupted_id in ids for interrupted_id in interrupted)
    ref = tmp_path / "uninterrupted"
    subprocess.run(
        [sys.executable, str(REPO / "trials" / "mat_trial.py"), *tiny_flags(model, data), "--epochs", str(LONG_EPOCHS),
         "--lambda_s", "1.0", "--output_dir", str(ref)],
        check=True, capture_output=True, cwd=REPO,
    )
    ref_rec = read_record(ref / "trial.json")
    assert [asdict(e) for e in final_rec.evals] == [asdict(e) for e in ref_rec.evals], "the same evaluations as an uninterrupted run"
    wa, wb = weights(ref), weights(long_dir)
    assert [k for k in wa if not (wa[k] == wb[k]).all()] == [], "weights differ from an uninterrupted run"

    # The analysis of the finished experiment: each trial once, finished, with the parameters it ran with.
    df = load_nni_experiment(exp.id, home / "nni-experiments")
    per_trial = trials(df).set_index("trial")
    assert sorted(per_trial.index) == sorted(ids)
    assert status_counts(df) == {"SUCCEEDED": MAX_TRIALS, "RUNNING": 0, "FAILED": 0, "INTERRUPTED": 0}
    for tid, sent in ran.items():
        assert same_params(sent, {k: per_trial.loc[tid, f"param.{k}"] for k in sent}), tid
    best = df[(df["kind"] == "best") & (df["metric"] == "accuracy")]
    assert Counter(best["trial"]) == Counter(ids), "one best row per trial"
    evals = df[(df["trial"] == long_id) & (df["kind"] == "eval")]
    assert evals["step"].tolist() == [float(e.step) for e in final_rec.evals]


# ------------------------------------------------------- the trial re-dispatched with another trial's parameters


def _load_trial_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mat_trial_under_test", REPO / "trials" / "mat_trial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_nni(monkeypatch: pytest.MonkeyPatch, record: dict[str, Any], reports_before_stop: int | None = None) -> list[tuple[str, Any, Any]]:
    """Stand in for ``nni`` in this process: hands out ``record``; after ``reports_before_stop`` intermediate
    results, reports fail as they do once ``nnictl stop`` took the command channel away."""
    import types

    reports: list[tuple[str, Any, Any]] = []
    nni = types.ModuleType("nni")
    nni.trial = types.SimpleNamespace(_params=None)

    def get_next_parameter() -> dict[str, Any]:
        nni.trial._params = record
        return dict(record["parameters"])

    def report(kind: str) -> Any:
        def send(metric: Any) -> None:
            if kind == "PERIODICAL" and reports_before_stop is not None and len(reports) >= reports_before_stop:
                raise ConnectionError("Max retries exceeded with url: /env/local-env/T1")  # an OSError, as requests' is
            reports.append((kind, nni.trial._params["parameter_id"], metric))
        return send

    nni.get_next_parameter = get_next_parameter
    nni.get_trial_id, nni.get_experiment_id = (lambda: "T1"), (lambda: "E1")
    nni.report_intermediate_result, nni.report_final_result = report("PERIODICAL"), report("FINAL")
    monkeypatch.setitem(sys.modules, "nni", nni)
    monkeypatch.setenv("NNI_PLATFORM", "local")
    return reports


def test_a_trial_resumed_with_another_trials_parameters_continues_its_own_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """NNI 3.0 re-dispatches the parameter record it filed under the trial id; with trials started side by side
    that can be another trial's (seen in the live test: the long trial came back with the short one's set)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # in-process training: several threads on a busy 2-core machine are 10x slower
    try:
        _resumed_with_other_parameters(tmp_path, monkeypatch, caplog)
    finally:
        torch.set_num_threads(threads)


def _resumed_with_other_parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    model, data = make_tiny_model_dir(tmp_path / "model"), make_tiny_glue_dir(tmp_path / "data")
    out = tmp_path / "T1"
    flags = [*tiny_flags(model, data), "--epochs", "3", "--checkpoint_every", "0", "--output_dir", str(out)]
    trial = _load_trial_module()
    mine = {"parameter_id": 1, "parameter_source": "algorithm", "parameters": {"lambda_s": 2.0}, "parameter_index": 0}
    _fake_nni(monkeypatch, mine, reports_before_stop=1)
    assert trial.main(flags) == trial.EXIT_INTERRUPTED
    stopped = read_record(out / "trial.json")
    assert stopped.status == "INTERRUPTED" and stopped.error.startswith("NNI became unreachable")
    assert stopped.train_steps == 2 * STEPS_PER_EPOCH and checkpoint_step(out) == stopped.train_steps

    other = {"parameter_id": 0, "parameter_source": "resumed", "parameters": {"lambda_s": 0.5}, "parameter_index": 0}
    reports = _fake_nni(monkeypatch, other)
    caplog.set_level("INFO")
    assert trial.main(flags) == 0
    rec = read_record(out / "trial.json")
    assert rec.status == "SUCCEEDED" and rec.params["lambda_s"] == 2.0 and rec.train_steps == 3 * STEPS_PER_EPOCH
    assert "continuing with the parameters it ran with" in caplog.text
    assert f"resumed from {out / 'checkpoints' / 'checkpoint-8.pt'}" in caplog.text
    assert [(kind, pid) for kind, pid, _ in reports] == [("PERIODICAL", 0), ("FINAL", 0)], "under the id NNI re-sent"
    assert json.loads((out / "nni_parameters.json").read_text())["parameters"] == {"lambda_s": 2.0}, "kept"

    monkeypatch.delenv("NNI_PLATFORM")  # the same run, uninterrupted and outside NNI
    ref = tmp_path / "ref"
    assert trial.main([*flags[:-1], str(ref), "--lambda_s", "2.0"]) == 0
    assert [asdict(e) for e in rec.evals] == [asdict(e) for e in read_record(ref / "trial.json").evals]


# ------------------------------------------------------------------- analysis of stopped / resumed stores

_TABLES = {
    "TrialJobEvent": "timestamp INTEGER, trialJobId TEXT, event TEXT, data TEXT, logPath TEXT, sequenceId INTEGER, message TEXT, environmentId TEXT",
    "MetricData": "timestamp INTEGER, trialJobId TEXT, parameterId TEXT, type TEXT, sequence INTEGER, data TEXT",
    "ExperimentProfile": "params TEXT, id TEXT, execDuration INTEGER, startTime INTEGER, endTime INTEGER, logDir TEXT, nextSequenceId INTEGER, revision INTEGER",
}
_COMMAND = "python3 trials/mat_trial.py --task sst2 --model tiny --method mat --seed 1"


def _param(pid: int, params: dict[str, Any], source: str = "algorithm") -> str:
    return json.dumps({"parameter_id": pid, "parameter_source": source, "parameters": params, "parameter_index": 0})


def _metric(value: float) -> str:
    return json.dumps(json.dumps({"default": value, "accuracy": value}))


def make_store(root: Path, exp: str, events: list[tuple], metrics: list[tuple], end_time: int | None) -> Path:
    """An NNI 3.0 store: events (ts, trial, event, data: NULL for status changes, '' for ADD_RESUMED), metrics (ts, trial, parameter id, type, seq, value)."""
    db = root / exp / "db" / "nni.sqlite"
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    for table, cols in _TABLES.items():
        con.execute(f"CREATE TABLE {table} ({cols})")
    con.execute("INSERT INTO ExperimentProfile VALUES (?, ?, 0, 0, NULL, '', 0, 1)", (json.dumps({"trialCommand": _COMMAND}), exp))
    con.execute("INSERT INTO ExperimentProfile VALUES (?, ?, 9, 0, ?, '', 0, 2)", (json.dumps({"trialCommand": _COMMAND}), exp, end_time))
    con.executemany("INSERT INTO TrialJobEvent VALUES (?, ?, ?, ?, NULL, 0, NULL, 'local-env')", events)
    con.executemany("INSERT INTO MetricData VALUES (?, ?, ?, ?, ?, ?)", [(t, tr, str(p), ty, s, _metric(v)) for t, tr, p, ty, s, v in metrics])
    con.commit()
    con.close()
    return root


# Before the stop: A (pid 0) finished, B (pid 1) ran with two intermediate results, C (pid 2) was submitted.
_STOPPED_EVENTS = [
    (100, "A", "RUNNING", _param(0, {"lambda_s": 0.5})),
    (101, "B", "RUNNING", _param(1, {"lambda_s": 1.0})),
    (150, "A", "SUCCEEDED", None),
    (151, "C", "RUNNING", _param(2, {"lambda_s": 2.0})),
]
_STOPPED_METRICS = [(140, "A", 0, "PERIODICAL", 0, 60.0), (149, "A", 0, "FINAL", 0, 60.0),
                    (145, "B", 1, "PERIODICAL", 0, 55.0), (155, "B", 1, "PERIODICAL", 1, 57.0)]


@pytest.mark.parametrize("end_time, partial", [(160, "INTERRUPTED"), (None, "RUNNING")])
def test_trials_running_when_the_experiment_stopped_are_interrupted(tmp_path: Path, end_time: int | None, partial: str) -> None:
    root = make_store(tmp_path, "exp1", _STOPPED_EVENTS, _STOPPED_METRICS, end_time)
    df = load_nni_experiment("exp1", root)
    per_trial = trials(df).set_index("trial")
    assert per_trial["status"].to_dict() == {"A": "SUCCEEDED", "B": partial, "C": partial}
    if partial == "INTERRUPTED":
        assert "stopped (NNI stop command)" in per_trial.loc["B", "error"]
    assert set(df.loc[df["kind"] == "best", "trial"]) == {"A"}, "no final result reported: no best row"
    assert set(trial_scores(df)["trial"]) == {"A"}, "only the finished trial is scored"
    assert df[(df["trial"] == "B") & (df["kind"] == "eval") & (df["metric"] == "accuracy")]["value"].tolist() == [55.0, 57.0]


def test_a_record_still_running_in_a_stopped_experiment_is_interrupted(tmp_path: Path) -> None:
    root = make_store(tmp_path, "exp1", _STOPPED_EVENTS, _STOPPED_METRICS, 160)
    folder = root / "exp1" / "environments" / "local-env" / "trials" / "B"
    folder.mkdir(parents=True)
    rec = TrialRecord(trial_id="B", experiment_id="exp1", method="mat", task="sst2", model="tiny", seed=1, params={"lambda_s": 1.0})
    (folder / "trial.json").write_text(json.dumps(rec.to_dict()))  # status RUNNING: SIGKILLed, say
    per_trial = trials(load_nni_experiment("exp1", root)).set_index("trial")
    assert per_trial.loc["B", "status"] == "INTERRUPTED" and "partial" in per_trial.loc["B", "error"]
    assert per_trial.loc["B", "source"] == str(folder / "trial.json")


def test_a_resumed_experiment_counts_each_trial_once_with_its_parameters(tmp_path: Path) -> None:
    """As NNI 3.0 writes it: B and C re-dispatched under their ids (ADD_RESUMED, empty data), then a new trial
    D whose parameter id 1 NNI issued again (the dispatcher restarts ids after the largest resumed one, or
    at 0 when none was running): D's metrics pair with the set issued last before them."""
    events = _STOPPED_EVENTS + [
        (200, "B", "ADD_RESUMED", ""),
        (200, "C", "ADD_RESUMED", ""),
        (201, "B", "RUNNING", _param(1, {"lambda_s": 1.0}, "resumed")),
        (201, "C", "RUNNING", _param(2, {"lambda_s": 2.0}, "resumed")),
        (250, "C", "SUCCEEDED", None),
        (251, "D", "RUNNING", _param(1, {"lambda_s": 3.0})),
        (300, "B", "SUCCEEDED", None),
        (310, "D", "SUCCEEDED", None),
    ]
    metrics = _STOPPED_METRICS + [
        (240, "C", 2, "FINAL", 0, 62.0),
        (290, "B", 1, "PERIODICAL", 0, 58.0),  # the re-run's sequence starts at 0 again
        (299, "B", 1, "FINAL", 0, 58.0),
        (305, "D", 1, "PERIODICAL", 0, 70.0),
        (309, "D", 1, "FINAL", 0, 70.0),
    ]
    root = make_store(tmp_path, "exp1", events, metrics, 320)
    df = load_nni_experiment("exp1", root)
    per_trial = trials(df).set_index("trial")
    assert sorted(per_trial.index) == ["A", "B", "C", "D"] and (per_trial["status"] == "SUCCEEDED").all()
    assert per_trial["param.lambda_s"].to_dict() == {"A": 0.5, "B": 1.0, "C": 2.0, "D": 3.0}
    best = df[(df["kind"] == "best") & (df["metric"] == "accuracy")].set_index("trial")["value"]
    assert best.to_dict() == {"A": 60.0, "B": 58.0, "C": 62.0, "D": 70.0}
