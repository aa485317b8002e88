"""The component study's bookkeeping (trials/components.py): cells with and without records, a search space of
only the missing cells that NNI's own GridSearch walks cell by cell, the nested parameters a trial flattens, the
records copied into the study's folder, and one real ``nnictl`` run of the missing cells of a tiny study."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from mat.cli import parse_cli
from mat.provenance import resolve
from mat.spec.config import apply_overrides
from mat.spec.records import read_record, write_record
from mat.train import fit
from tests.helpers import REPO, make_tiny_glue_dir, make_tiny_model_dir
from tests.nni_support import free_port, isolate, trial_command, write_config
from trials import components
from trials.mat_trial import flatten_nested
from trials.search_space import search_space_problems


def tiny_flags(root: Path) -> list[str]:
    model, data = make_tiny_model_dir(root / "model"), make_tiny_glue_dir(root / "data", n_train=32, n_dev=16)
    return ["--task", "sst2", "--model", str(model), "--data_dir", str(data), "--method", "mat", "--max_length", "16",
            "--epochs", "1", "--batch_size", "16", "--eval_times", "1", "--device", "cpu", "--num_threads", "1",
            "--sampling_times_delta", "1", "--sampling_times_theta", "2", "--lambda_s", "1", "--sampling_noise_ratio", "0.1",
            "--beta_s", "0.3", "--beta_p", "0.3", "--sampler", "adam"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("components")
    return root, tiny_flags(root)


def run_cell(flags: list[str], out: Path, rung: str, seed: int) -> Path:
    """One trial of a cell as NNI would run it (flags, then the nested parameters flattened and merged)."""
    params = flatten_nested({"seed": {"_name": seed, "rung": rung}})
    cfg = apply_overrides(parse_cli([*flags, "--output_dir", str(out), "--trial_id", f"{rung}-{seed}"]), params)
    rec = fit(resolve(cfg), show_progress=False)
    assert rec.status == "SUCCEEDED"
    return out / "trial.json"


def test_nested_parameters_flatten_to_the_trials_keys() -> None:
    assert flatten_nested({"seed": {"_name": 3, "rung": "mat"}, "lambda_s": 2}) == {"seed": 3, "rung": "mat", "lambda_s": 2}
    assert flatten_nested({"rung": {"_name": "sampling", "seed": {"_name": 2, "beta_s": 0.1}}}) == {"rung": "sampling", "seed": 2, "beta_s": 0.1}
    assert flatten_nested({"seed": 1}) == {"seed": 1}
    with pytest.raises(ValueError, match=r"'seed' is given twice.*nested choice"):
        flatten_nested({"rung": {"_name": "mat", "seed": 2}, "seed": 1})


def test_the_missing_cells_space_is_walked_cell_by_cell_by_nni_gridsearch() -> None:
    from nni.algorithms.hpo.gridsearch_tuner import GridSearchTuner

    cells = [("vanilla", 1), ("mat", 1), ("sampling", 2), ("vanilla", 4)]
    space = components.nested_space(cells)
    assert search_space_problems(space, "mat") == []
    tuner = GridSearchTuner()
    tuner.update_search_space(space)
    got = [flatten_nested(tuner.generate_parameters(i)) for i in range(len(cells))]
    assert [(p["rung"], p["seed"]) for p in got] == cells, "every missing cell once, seed-major, in order"
    with pytest.raises(Exception, match="fully explored"):
        tuner.generate_parameters(len(cells))
    with pytest.raises(ValueError, match="no cells"):
        components.nested_space([])


def test_a_bad_nested_space_is_reported_before_the_experiment() -> None:
    space = {"seed": {"_type": "choice", "_value": [{"_name": 1, "rung": {"_type": "choice", "_value": ["matt"]}}]}}
    [problem] = search_space_problems(space, "mat")
    assert "'rung'" in problem and "Did you mean 'mat'?" in problem


def test_records_collect_into_their_cells_and_count_as_done(tiny: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, flags = tiny
    exp = tmp_path / "nni-experiments" / "abc" / "environments" / "local-env" / "trials"
    a = run_cell(flags, exp / "A", "vanilla", 1)
    b = run_cell(flags, exp / "B", "dropout_consistency", 2)
    failed = read_record(b)
    failed.status, failed.trial_id = "FAILED", "C"
    write_record(failed, exp / "C")
    (exp / "D").mkdir()
    (exp / "D" / "trial.json").write_text('{"schema": 1, "trial_id": "D"')  # half-written: skipped
    records = tmp_path / "records"
    new = components.collect([exp.parents[2]], records)
    assert new == [records / "sst2" / "vanilla-seed1" / "trial.json", records / "sst2" / "dropout_consistency-seed2" / "trial.json"]
    assert new[0].read_bytes() == a.read_bytes() and new[1].read_bytes() == b.read_bytes()
    assert components.collect([exp.parents[2]], records) == [], "a cell keeps its first record"
    assert set(components.done_cells(records, "sst2")) == {("vanilla", 1), ("dropout_consistency", 2)}
    assert components.missing_cells(records, "sst2", ["vanilla", "dropout_consistency"], [1, 2]) == [
        ("dropout_consistency", 1), ("vanilla", 2)]
    shutil.copyfile(a, records / "sst2" / "dropout_consistency-seed2" / "trial.json")
    with pytest.raises(ValueError, match=r"dropout_consistency-seed2/trial.json: a SUCCEEDED sst2 record of cell \(vanilla, seed 1\)"):
        components.done_cells(records, "sst2")


def test_the_missing_config_points_at_the_new_space_with_absolute_paths(tmp_path: Path) -> None:
    src = REPO / "nni_configs" / "components_rte.yml"
    space = components.nested_space([("mat", 2)])
    out = components.missing_config(src, space, 1, tmp_path)
    config, original = yaml.safe_load(out.read_text()), yaml.safe_load(src.read_text())
    assert config["maxTrialNumber"] == 1 and json.loads(Path(config["searchSpaceFile"]).read_text()) == space
    assert Path(config["trialCodeDirectory"]) == REPO
    assert {k: v for k, v in config.items() if k not in ("maxTrialNumber", "searchSpaceFile", "trialCodeDirectory")} == {
        k: v for k, v in original.items() if k not in ("maxTrialNumber", "searchSpaceFile", "trialCodeDirectory")}
    assert components.config_task(config) == "rte"
    assert original["trialConcurrency"] == 2
    assert yaml.safe_load(components.missing_config(src, space, 1, tmp_path, concurrency=1).read_text())["trialConcurrency"] == 1
    with pytest.raises(ValueError, match="no --task"):
        components.config_task({"trialCommand": "python3 trials/mat_trial.py --method mat"})


def test_cli_refuses_unknown_rungs_and_bad_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        components.main(["status", "--task", "rte", "--rungs", "vanilla,matt"])
    assert e.value.code == 2 and "Did you mean 'mat'?" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        components.main(["status", "--task", "rte", "--seeds", "1-x"])
    assert e.value.code == 2 and "1-5 or 1,2,7" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        components.main(["run", "nni_configs/components_rte.yml", "--concurrency", "0"])
    assert e.value.code == 2 and "--concurrency: must be a whole number of at least 1; got '0'" in capsys.readouterr().err


@pytest.mark.nni
def test_run_does_only_the_missing_cells_under_real_nni(tiny: tuple[Path, list[str]], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root, flags = tiny
    records = tmp_path / "records"
    run_cell(flags, records / "sst2" / "vanilla-seed1", "vanilla", 1)  # a cell an earlier session finished
    before = (records / "sst2" / "vanilla-seed1" / "trial.json").read_bytes()
    config = write_config(tmp_path / "components_tiny.yml", {
        "experimentName": "components-tiny", "searchSpaceFile": str(REPO / "search_spaces" / "components.json"),
        "trialCommand": trial_command(*flags), "trialCodeDirectory": str(REPO), "trialConcurrency": 2,
        "maxTrialNumber": 35, "tuner": {"name": "GridSearch"}, "trainingService": {"platform": "local"},
    })
    isolate(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    code = components.main(["run", str(config), "--records", str(records), "--rungs", "vanilla,mat", "--seeds", "1-2",
                            "--port", str(free_port()), "--collect_every", "1", "--timeout", "600", "--stop",
                            "--allow_dirty"])  # the tree under test may hold uncommitted edits
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 missing cells of sst2" in out and "3/3 missing cells now have a record" in out
    done = components.done_cells(records, "sst2")
    assert set(done) == {("vanilla", 1), ("mat", 1), ("vanilla", 2), ("mat", 2)}
    assert (records / "sst2" / "vanilla-seed1" / "trial.json").read_bytes() == before, "a finished cell is not re-run"
    for (rung, seed), path in done.items():
        rec = read_record(path)
        assert (rec.params["rung"], rec.seed, rec.method) == (rung, seed, "vanilla" if rung == "vanilla" else "mat")
        if path.read_bytes() != before:
            assert rec.experiment_id and rec.git_sha is not None
    assert dataclasses.asdict(read_record(done[("mat", 1)]).evals[0])["telemetry"]["delta_norm"] > 0


def test_run_refuses_a_tree_with_uncommitted_changes_unless_allowed(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from mat.provenance import GitState

    monkeypatch.setattr(components, "git_state", lambda: GitState("a" * 40, True, "b" * 64))
    assert components.main(["run", "nni_configs/components_rte.yml", "--records", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "uncommitted changes to tracked files" in err and "--allow_dirty" in err and "bbbbbbbbbbbb" in err
    assert components.refuse_dirty(allow_dirty=True) is None
    monkeypatch.setattr(components, "git_state", lambda: GitState("a" * 40, False, None))
    assert components.refuse_dirty(allow_dirty=False) is None


def test_git_state_names_the_commit_and_hashes_the_edit(tmp_path: Path) -> None:
    from mat.provenance import GitState, git_state

    if shutil.which("git") is None:
        pytest.skip("no git")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    clean = git_state(tmp_path)
    assert clean.sha is not None and len(clean.sha) == 40 and (clean.dirty, clean.diff_sha) == (False, None)
    (tmp_path / "untracked.py").write_text("y = 2\n")
    assert git_state(tmp_path).dirty is False, "untracked files are not the code under version control"
    (tmp_path / "a.py").write_text("x = 2\n")
    one = git_state(tmp_path)
    (tmp_path / "a.py").write_text("x = 3\n")
    other = git_state(tmp_path)
    assert one.dirty and other.dirty and one.sha == clean.sha
    assert one.diff_sha is not None and other.diff_sha is not None and one.diff_sha != other.diff_sha
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path).diff_sha == one.diff_sha, "the same edit, the same hash"
    outside = Path(tempfile.mkdtemp())
    assert git_state(outside) == GitState(None, None, None), "outside a checkout: unknown, not clean"


def test_wait_does_not_end_before_the_last_grid_cell_has_a_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in a fresh-clone run: NNI said TUNER_NO_MORE_TRIAL with 2 of 3 GridSearch trials SUCCEEDED and the
    third not yet listed; the wait ended there and the run exited 1 with a cell missing. With ``expected`` the
    wait goes on until the third trial is listed and done; without it, until the state has settled."""
    from trials import experiment

    two = [{"status": "SUCCEEDED"}] * 2
    script = [("TUNER_NO_MORE_TRIAL", two)] * 3 + [("TUNER_NO_MORE_TRIAL", two + [{"status": "RUNNING"}]),
                                                   ("TUNER_NO_MORE_TRIAL", two + [{"status": "SUCCEEDED"}])]
    calls: list[str] = []  # one poll asks check-status, then trial-jobs; after the script, its last step repeats

    def rest(port: int, path: str, timeout: float = 10) -> object:
        calls.append(path)
        step = script[min((len(calls) - 1) // 2, len(script) - 1)]
        return {"status": step[0]} if path == "check-status" else step[1]

    monkeypatch.setattr(experiment, "rest", rest)
    assert experiment.wait(1, timeout=5, poll=0.001, echo=False, expected=3) == "TUNER_NO_MORE_TRIAL"
    assert len(calls) == 2 * len(script), "the wait ended before the third trial was listed and done"
    calls.clear()
    assert experiment.wait(1, timeout=5, poll=0.001, echo=False, settle=0.3) == "TUNER_NO_MORE_TRIAL"
    assert len(calls) > 2 * len(script), "without expected it waits out the settle time, seeing the third trial"
    calls.clear()
    script[:] = [("TUNER_NO_MORE_TRIAL", two)]
    assert experiment.wait(1, timeout=5, poll=0.001, echo=False, settle=0.05) == "TUNER_NO_MORE_TRIAL"
    assert len(calls) > 4, "a settled state ends the wait, after more than one poll"


def test_wait_gives_up_when_nni_stops_answering_after_it_had_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    """``nnictl stop`` from elsewhere takes the REST API away for good: the wait ends instead of polling for days."""
    import urllib.error

    from trials import experiment

    answers = iter([{"status": "RUNNING"}, [{"status": "RUNNING"}]])

    def rest(port: int, path: str, timeout: float = 10) -> object:
        try:
            return next(answers)
        except StopIteration:
            raise urllib.error.URLError("connection refused") from None

    monkeypatch.setattr(experiment, "rest", rest)
    polls: list[int] = []
    with pytest.raises(experiment.ExperimentError, match=r"port 1 stopped answering .*nnictl stop"):
        experiment.wait(1, timeout=60, poll=0.01, echo=False, on_poll=lambda: polls.append(1), gone_after=0.2)
    assert len(polls) >= 2, "the collector still ran while NNI was gone"

    def never(port: int, path: str, timeout: float = 10) -> object:
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(experiment, "rest", never)  # not up yet: only the timeout ends the wait
    with pytest.raises(experiment.ExperimentError, match="did not finish within"):
        experiment.wait(1, timeout=0.3, poll=0.01, echo=False, gone_after=0.05)


def test_create_starts_again_when_nnis_web_server_was_slow(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """NNI 3.0 waits 3 s for its web server; on a busy machine nnictl create fails so (output as NNI printed it
    here, beside two study trials) and a new start succeeds; any other failure is reported at once."""
    import subprocess

    from trials import experiment

    slow = ("[2026-11-30 19:35:57] Creating experiment, Experiment ID: kime5dzu\n"
            "[2026-11-30 19:35:57] Starting web server...\n[2026-11-30 19:35:59] WARNING: Timeout, retry...\n"
            "[2026-11-30 19:36:01] ERROR: Create experiment failed: HTTPConnectionPool(host='localhost', port=40649): "
            "Max retries exceeded with url: /api/v1/nni/check-status (Caused by NewConnectionError(\"HTTPConnection("
            "host='localhost', port=40649): Failed to establish a new connection: [Errno 111] Connection refused\"))\n")
    ok = "[2026-11-30 19:36:53] Creating experiment, Experiment ID: \x1b[36mutn8v5cs\x1b[0m\n"
    not_json = ("[2026-11-30 19:39:57] Creating experiment, Experiment ID: asz0q95n\n"
                "[2026-11-30 19:39:57] Starting web server...\n[2026-11-30 19:39:58] WARNING: Timeout, retry...\n"
                "[2026-11-30 19:40:00] ERROR: Create experiment failed: Expecting value: line 1 column 1 (char 0)\n")
    bad = ("[2026-11-30 19:36:53] Creating experiment, Experiment ID: utn8v5cs\n[2026-11-30 19:36:54] Starting web "
           "server...\n[2026-11-30 19:36:55] Setting up...\nERROR: Create experiment failed: 400 bad search space\n")
    calls: list[dict[str, str] | None] = []

    def fake(outputs: list[tuple[int, str]]) -> None:
        it = iter(outputs)

        def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
            calls.append(kw.get("env"))  # type: ignore[arg-type]
            code, out = next(it)
            return subprocess.CompletedProcess(cmd, code, out, "")
        monkeypatch.setattr(experiment.subprocess, "run", run)
        calls.clear()

    fake([(1, slow), (1, not_json), (0, ok)])
    assert experiment.create("c.yml", 1, env={"HOME": "/h"}, bind=None) == "utn8v5cs"  # bind=None: no config read
    assert calls == [{"HOME": "/h"}] * 3 and capsys.readouterr().err.count("starting again") == 2
    fake([(1, slow)] * 3)
    with pytest.raises(experiment.ExperimentError, match="(?s)exit 1.*Connection refused"):
        experiment.create("c.yml", 1, bind=None)
    assert len(calls) == 3, "three starts in all, then the error"
    fake([(1, bad), (0, ok)])
    with pytest.raises(experiment.ExperimentError, match="400 bad search space"):
        experiment.create("c.yml", 1, bind=None)
    assert len(calls) == 1, "a failure that is not NNI's slow start is not retried"


def test_status_estimates_the_missing_cells_from_the_finished_records(tmp_path: Path) -> None:
    from mat.spec.records import TrialRecord

    def put(task: str, rung: str, seed: int, total: float) -> None:
        rec = TrialRecord(trial_id=f"{task}-{rung}-{seed}", method="mat", task=task, model="minilm", seed=seed,
                          params={"rung": rung, "seed": seed}, status="SUCCEEDED",
                          cost={"wall_seconds": {"total": total}})
        write_record(rec, components.cell_dir(tmp_path, task, rung, seed))

    put("stsb", "vanilla", 1, 600.0)
    put("stsb", "vanilla", 2, 500.0)
    put("stsb", "vanilla", 3, 900.0)  # median 600
    put("stsb", "mat", 1, 3600.0)
    put("cola", "mat", 1, 7200.0)  # another task's mat: stsb keeps its own
    put("cola", "sampling", 1, 1800.0)  # stsb has no sampling record: taken from cola
    assert components.rung_seconds(tmp_path, "stsb") == {"vanilla": 600.0, "mat": 3600.0, "sampling": 1800.0}
    cells = [("vanilla", 4), ("mat", 2), ("sampling", 2), ("r3f", 1)]
    # 600 + 3600 + 1800 = 6000 s = 1.67 trial-hours, 0.83 h at 2 at a time; r3f has no record anywhere
    assert components.estimate(tmp_path, "stsb", cells) == (
        "4 cells to run: about 1.7 trial-hours by the finished records' median wall time per rung, 0.8 h at 2 at a "
        "time; not counted (no record of the rung yet): r3f")
    assert components.main(["status", "--task", "stsb", "--records", str(tmp_path), "--rungs", "vanilla,mat",
                            "--seeds", "1-3"]) == 0


def test_every_committed_study_record_ran_the_same_training_code() -> None:
    """The study's records name several commits (the repo changed elsewhere while it ran); the training code,
    mat/ and trials/mat_trial.py, must be the same at all of them, or the rungs would not be comparable."""
    shas = sorted({read_record(p).git_sha or "" for p in (REPO / "results" / "components").glob("*/*/trial.json")})
    if not shas:
        pytest.skip("no component-study records committed yet")
    assert "" not in shas, "a study record without git_sha"
    git = ["git", "-C", str(REPO)]
    if shutil.which("git") is None or any(
            subprocess.run([*git, "cat-file", "-e", f"{s}^{{commit}}"], capture_output=True).returncode for s in shas):
        pytest.skip("the records' commits are not in this checkout (no git, or a shallow clone)")
    for sha in shas[1:]:
        diff = subprocess.run([*git, "diff", "--stat", shas[0], sha, "--", "mat", "trials/mat_trial.py"],
                              capture_output=True, text=True, check=True).stdout
        assert diff == "", f"training code differs between {shas[0][:7]} and {sha[:7]}:\n{diff}"
