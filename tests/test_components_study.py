"""The component study as a study config of the study runner (studies/components.yml, trials/study.py): no grid
and no tune phase, every rung an arm at the shared settings on the report seeds, records in the flat layout
``<task>/<rung>-seed<k>/``; the records from before arms and phases (``params.rung`` only) counted as done cells;
a search space of only the missing cells that NNI's own GridSearch walks seed by seed; records collected into
their cells; the former command line (``python -m trials.components``) mapped onto the runner; and one real
``nnictl`` run of the missing cells of a tiny flat study."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from mat.cli import parse_cli
from mat.provenance import resolve as resolve_trial
from mat.spec.arms import apply_study_params
from mat.spec.config import apply_overrides
from mat.spec.ladder import RUNG_NAMES
from mat.spec.records import TrialRecord, read_record, write_record
from mat.train import fit
from tests.helpers import REPO, make_tiny_glue_dir, make_tiny_model_dir
from tests.nni_support import free_port, isolate
from trials import components
from trials import study as runner
from trials.mat_trial import flatten_nested
from trials.search_space import search_space_problems
from trials.study_config import StudyConfigError, load_study, report_cells, resolve

COMPONENTS = REPO / "studies" / "components.yml"
SHARED = ("--method mat --max_length 16 --epochs 1 --batch_size 16 --eval_times 1 --device cpu --num_threads 1 "
          "--sampling_times_delta 1 --sampling_times_theta 2 --lambda_s 1 --sampling_noise_ratio 0.1 --beta_s 0.3 "
          "--beta_p 0.3 --sampler adam")


def flat_study(root: Path, model: str = "minilm", data: Path | None = None, **change: Any) -> Path:
    """A tiny component study: no grid, no tuning seeds, three rungs as arms, report seeds 1-2, flat records."""
    config = {"name": "tinyladder", "records": str(root / "records"), "layout": "flat", "tasks": ["sst2"],
              "model": model, "python": sys.executable, "report_seeds": [1, 2], "concurrency": 2,
              "flags": SHARED + (f" --data_dir {data}" if data else ""),
              "arms": {r: {"settings": {"rung": r}} for r in ("vanilla", "dropout_consistency", "mat")}, **change}
    path = root / "tinyladder.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def put(folder: Path, seed: int, params: dict[str, Any], status: str = "SUCCEEDED", task: str = "sst2") -> Path:
    """A hand-written record (what a trial writes, without the training) in ``folder``."""
    rec = TrialRecord(trial_id=f"{folder.name}-{len(params)}", method="mat", task=task, model="minilm", seed=seed,
                      params={**params, "seed": seed}, status=status, cost={"wall_seconds": {"total": 60.0}})
    return write_record(rec, folder)


def test_nested_parameters_flatten_to_the_trials_keys() -> None:
    assert flatten_nested({"seed": {"_name": 3, "rung": "mat"}, "lambda_s": 2}) == {"seed": 3, "rung": "mat", "lambda_s": 2}
    assert flatten_nested({"rung": {"_name": "sampling", "seed": {"_name": 2, "beta_s": 0.1}}}) == {"rung": "sampling", "seed": 2, "beta_s": 0.1}
    assert flatten_nested({"seed": 1}) == {"seed": 1}
    with pytest.raises(ValueError, match=r"'seed' is given twice.*nested choice"):
        flatten_nested({"rung": {"_name": "mat", "seed": 2}, "seed": 1})


def test_the_study_config_runs_every_rung_exactly_as_the_components_nni_configs_did() -> None:
    study = load_study(COMPONENTS)
    assert (study.layout, study.tuning_seeds, study.report_seeds, study.concurrency) == ("flat", (), (1, 2, 3, 4, 5), 2)
    assert [a.name for a in study.enabled()] == list(RUNG_NAMES) and all(a.points == ((),) for a in study.arms)
    assert study.records == REPO / "results" / "components"
    configs = {t: yaml.safe_load((REPO / "nni_configs" / f"components_{t}.yml").read_text()) for t in study.tasks}
    for task, config in configs.items():
        assert components.trial_flags(config) == ["--task", task, "--model", study.model, *study.flags]
        assert config["trialConcurrency"] == study.concurrency
        for cell in report_cells(study, task, {a.name: () for a in study.arms}):
            legacy = apply_overrides(parse_cli(components.trial_flags(config)), {"rung": cell.arm, "seed": cell.seed})
            assert resolve(study, cell) == legacy, cell
    cfg = resolve(study, report_cells(study, "cola", {"r3f": ()})[0])
    assert (cfg.run.method, cfg.rung, cfg.train.learning_rate, cfg.run.diagnostics) == ("r3f", "r3f", 1e-4, True)


@pytest.mark.parametrize("change, field, words", [
    ({"grid": {"learning_rate": [1e-4, 3e-4]}}, "tuning_seeds", "a grid of 2 points needs tuning seeds"),
    ({"tuning_seeds": [101]}, "tuning_seeds", "there is no grid to tune"),
    ({"tuning_seeds": [101], "grid": {"learning_rate": [1e-4, 3e-4]}}, "layout", "flat holds report records only"),
    ({"layout": "nested"}, "layout", "one of phased, flat"),
    ({"arms": {"mat": {"settings": {"rung": "matt"}}}}, "arms.mat", "Did you mean 'mat'?"),
])
def test_a_study_without_a_grid_is_refused_where_it_cannot_run(tmp_path: Path, change: dict[str, Any], field: str,
                                                              words: str) -> None:
    with pytest.raises(StudyConfigError) as e:
        load_study(flat_study(tmp_path, **change))
    assert f"tinyladder.yml: {field}: " in str(e.value) and words in str(e.value)


def test_the_missing_cells_space_is_walked_seed_major_by_nni_gridsearch(tmp_path: Path) -> None:
    from nni.algorithms.hpo.gridsearch_tuner import GridSearchTuner

    study = load_study(flat_study(tmp_path))
    records = tmp_path / "records" / "sst2"
    put(records / "vanilla-seed1", 1, {"rung": "vanilla", "arm": "vanilla", "phase": "report"})
    put(records / "mat-seed1", 1, {"rung": "mat"})  # a record from before arms and phases: done all the same
    cells = runner.missing(study, "sst2", "report", study.enabled())
    assert [(c.arm, c.seed) for c in cells] == [("dropout_consistency", 1), ("vanilla", 2), ("dropout_consistency", 2),
                                                ("mat", 2)], "only the missing cells, every arm of seed 1 first"
    assert runner.missing(study, "sst2", "tune", study.enabled()) == [] and cells[1].folder() == "sst2/vanilla-seed2"
    tuner = GridSearchTuner()
    tuner.update_search_space(runner.space(study, cells))
    got = [flatten_nested(tuner.generate_parameters(i)) for i in range(len(cells))]
    assert got[1] == {"arm": "vanilla", "method": "mat", "phase": "report", "rung": "vanilla", "seed": 2}
    assert [(p["arm"], p["seed"]) for p in got] == [(c.arm, c.seed) for c in cells]
    base = parse_cli(["--task", "sst2", "--model", "minilm", *SHARED.split()])
    assert [apply_study_params(base, p) for p in got] == [(resolve(study, c), {"arm": c.arm, "phase": "report"})
                                                          for c in cells], "what a trial makes of what it is sent"
    with pytest.raises(Exception, match="fully explored"):
        tuner.generate_parameters(len(cells))
    with pytest.raises(ValueError, match="no cells"):
        runner.space(study, [])


def test_a_bad_nested_space_is_reported_before_the_experiment() -> None:
    space = {"seed": {"_type": "choice", "_value": [{"_name": 1, "rung": {"_type": "choice", "_value": ["matt"]}}]}}
    [problem] = search_space_problems(space, "mat")
    assert "'rung'" in problem and "Did you mean 'mat'?" in problem


def test_records_collect_into_their_flat_cells_and_count_as_done(tmp_path: Path) -> None:
    study = load_study(flat_study(tmp_path))
    exp = tmp_path / "nni-experiments" / "abc" / "environments" / "local-env" / "trials"
    a = put(exp / "A", 1, {"rung": "vanilla", "arm": "vanilla", "phase": "report"})
    b = put(exp / "B", 2, {"rung": "dropout_consistency", "arm": "dropout_consistency", "phase": "report"})
    put(exp / "C", 2, {"rung": "mat", "arm": "mat", "phase": "report"}, status="FAILED")
    put(exp / "E", 1, {"rung": "r3f", "arm": "r3f", "phase": "report"})  # an arm this study does not have
    put(exp / "F", 1, {"rung": "mat", "arm": "mat", "phase": "report"}, task="rte")  # a task it does not have
    (exp / "D").mkdir()
    (exp / "D" / "trial.json").write_text('{"schema": 1, "trial_id": "D"')  # half-written: skipped
    records = tmp_path / "records" / "sst2"
    new = runner.collect(study, [exp.parents[2]])
    assert new == [records / "vanilla-seed1" / "trial.json", records / "dropout_consistency-seed2" / "trial.json"]
    assert new[0].read_bytes() == a.read_bytes() and new[1].read_bytes() == b.read_bytes()
    assert runner.collect(study, [exp.parents[2]]) == [], "a cell keeps its first record"
    done = runner.done_cells(study, "sst2")
    assert sorted(done) == ["sst2/dropout_consistency-seed2", "sst2/vanilla-seed1"]
    assert {(c.arm, c.phase, c.seed) for c, _ in done.values()} == {("vanilla", "report", 1),
                                                                   ("dropout_consistency", "report", 2)}
    assert [(c.arm, c.seed) for c in runner.missing(study, "sst2", "report", study.enabled())] == [
        ("dropout_consistency", 1), ("mat", 1), ("vanilla", 2), ("mat", 2)]
    shutil.copyfile(a, records / "dropout_consistency-seed2" / "trial.json")
    with pytest.raises(ValueError, match=r"dropout_consistency-seed2/trial.json: a SUCCEEDED record of "
                                         r"sst2/vanilla-seed1 does not belong here"):
        runner.done_cells(study, "sst2")


def test_a_record_from_before_arms_and_phases_is_a_done_cell_of_its_rung_only(tmp_path: Path) -> None:
    flat = load_study(flat_study(tmp_path))
    legacy = read_record(put(tmp_path / "x", 3, {"rung": "dropout_consistency"}))
    cell = runner.cell_of(flat, legacy)
    assert cell is not None and (cell.arm, cell.phase, cell.seed, cell.folder()) == (
        "dropout_consistency", "report", 3, "sst2/dropout_consistency-seed3")
    assert runner.cell_of(flat, read_record(put(tmp_path / "y", 3, {"rung": "sampling"}))) is None, "no arm sets it"
    assert runner.cell_of(flat, read_record(put(tmp_path / "z", 3, {"lambda_s": 1.0}))) is None, "no rung, no arm"
    tuned = load_study(flat_study(tmp_path, layout="phased", tuning_seeds=[101], grid={"learning_rate": [1e-4, 3e-4]}))
    assert runner.cell_of(tuned, legacy) is None, "a study with a tune phase cannot tell which phase it was"


def test_status_counts_the_committed_records_of_every_rung(capsys: pytest.CaptureFixture[str]) -> None:
    committed = {t: sorted(p.parent.name for p in (REPO / "results" / "components" / t).glob("*/trial.json"))
                 for t in ("cola", "stsb")}
    if not all(committed.values()):
        pytest.skip("no component-study records in this checkout")
    assert runner.main(["status", str(COMPONENTS), "--tasks", "cola,stsb"]) == 0
    out = capsys.readouterr().out
    for task, folders in committed.items():
        rungs = sorted({f.rsplit("-seed", 1)[0] for f in folders})
        assert len(folders) == 5 * len(rungs) and len(rungs) >= 5, "whole rungs of 5 seeds are committed"
        assert f"{task}: report {len(folders)}/35 cells have a record" in out
        for rung in RUNG_NAMES:
            marks = "done done done done done" if rung in rungs else "- - - - -"
            assert f"  {rung:<20} report {5 if rung in rungs else 0}/5: {marks}" in out
    assert "  vanilla              report 5/5: done done done done done" in out
    assert "rte:" not in out and "cola, stsb, estimate:" in out, "the tasks asked for, and only those"


def test_the_former_command_line_maps_onto_the_study_runner(capsys: pytest.CaptureFixture[str]) -> None:
    study = str(COMPONENTS)
    rte = str(REPO / "nni_configs" / "components_rte.yml")
    assert components.study_argv(["status", "--task", "stsb", "--rungs", "vanilla,mat"]) == [
        "status", study, "--tasks", "stsb", "--arms", "vanilla,mat"]
    assert components.study_argv(["space", "--task=cola", "--out", "s.json", "--records", str(REPO / "results" / "components")]) == [
        "space", study, "--task", "cola", "--out", "s.json"]
    assert components.study_argv(["run", rte, "--port", "8081", "--stop", "--seeds", "1-5", "--allow_dirty"]) == [
        "run", study, "--tasks", "rte", "--port", "8081", "--allow_dirty"]
    assert components.study_argv(["collect", "a", "b"]) == ["collect", study, "a", "b"]
    for argv, words in ((["status", "--seeds", "1-2"], "--seeds 1-2: studies/components.yml runs"),
                        (["status", "--records", "elsewhere"], "copy it and set records and report_seeds"),
                        (["rung"], "usage: python -m trials.components {status,space,collect,run}")):
        with pytest.raises(ValueError, match=words):
            components.study_argv(argv)
    assert components.main(["status", "--task", "rte", "--rungs", "vanilla,matt"]) == 2
    captured = capsys.readouterr()
    assert "is now: python -m trials.study status studies/components.yml --tasks rte --arms vanilla,matt" in captured.err
    assert "unknown arm 'matt'. Did you mean 'mat'?" in captured.err
    with pytest.raises(SystemExit) as e:
        components.main(["run", rte, "--concurrency", "0"])
    assert e.value.code == 2 and "--concurrency: must be a whole number of at least 1; got '0'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no --task"):
        components.config_task({"trialCommand": "python3 trials/mat_trial.py --method mat"})


def test_a_config_with_other_flags_is_not_run_as_the_study(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "nni_configs" / "components_rte.yml").read_text())
    config["trialCommand"] = config["trialCommand"].replace("--lambda_s 3", "--lambda_s 1")
    path = tmp_path / "components_other.yml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match="trialCommand's flags are not those of studies/components.yml"):
        components.study_argv(["run", str(path)])


def test_run_refuses_a_tree_with_uncommitted_changes_unless_allowed(monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from mat.provenance import GitState

    monkeypatch.setattr(runner, "git_state", lambda: GitState("a" * 40, True, "b" * 64))
    monkeypatch.setattr(runner, "run_phase", lambda *a: pytest.fail("an experiment was started"))
    assert components.main(["run", str(REPO / "nni_configs" / "components_rte.yml")]) == 2
    err = capsys.readouterr().err
    assert "uncommitted changes to tracked files" in err and "--allow_dirty" in err and "bbbbbbbbbbbb" in err
    assert runner.refuse_dirty(allow_dirty=True) is None
    monkeypatch.setattr(runner, "git_state", lambda: GitState("a" * 40, False, None))
    assert runner.refuse_dirty(allow_dirty=False) is None


@pytest.mark.nni
def test_run_does_only_the_missing_cells_under_real_nni(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    model, data = make_tiny_model_dir(tmp_path / "model"), make_tiny_glue_dir(tmp_path / "data", n_train=32, n_dev=16)
    path = flat_study(tmp_path, model=str(model), data=data,
                      arms={r: {"settings": {"rung": r}} for r in ("vanilla", "mat")})
    first = tmp_path / "records" / "sst2" / "vanilla-seed1"
    # a cell an earlier run finished the former way: the trial command's flags, then {rung, seed} (no arm, no phase)
    cfg = apply_overrides(parse_cli(["--task", "sst2", "--model", str(model), *SHARED.split(), "--data_dir", str(data),
                                     "--output_dir", str(first), "--trial_id", "old"]), {"rung": "vanilla", "seed": 1})
    assert fit(resolve_trial(cfg), show_progress=False).status == "SUCCEEDED"
    before = (first / "trial.json").read_bytes()
    isolate(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    code = runner.main(["run", str(path), "--port", str(free_port()), "--collect_every", "1", "--timeout", "600",
                        "--allow_dirty"])  # the tree under test may hold uncommitted edits
    out = capsys.readouterr().out
    assert code == 0, out
    assert "sst2 report, 3 cells" in out and "sst2: report 4/4 cells have a record" in out
    study = load_study(path)
    done = runner.done_cells(study, "sst2")
    assert sorted(done) == ["sst2/mat-seed1", "sst2/mat-seed2", "sst2/vanilla-seed1", "sst2/vanilla-seed2"]
    assert (first / "trial.json").read_bytes() == before, "a finished cell is not run again"
    for cell, p in done.values():
        rec = read_record(p)
        assert (rec.params["rung"], rec.seed, rec.method) == (cell.arm, cell.seed, "vanilla" if cell.arm == "vanilla" else "mat")
        if p.read_bytes() != before:
            assert (rec.params["arm"], rec.params["phase"]) == (cell.arm, "report")
            assert rec.experiment_id and rec.git_sha is not None
    assert dataclasses.asdict(read_record(done["sst2/mat-seed1"][1]).evals[0])["telemetry"]["delta_norm"] > 0


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
