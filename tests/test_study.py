"""The study runner (trials/study.py): study configs refused before anything runs, with the field named; the
cells, their folders and the search space NNI's GridSearch walks; arms and phases as trial parameters; the
estimate; and a real run whose NNI manager is SIGKILLed in the middle of a phase, then completed by a rerun."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mat.cli import parse_cli
from mat.spec.arms import apply_study_params
from mat.spec.records import TrialRecord, read_record, write_record
from tests.helpers import REPO, make_tiny_glue_dir, make_tiny_model_dir
from tests.nni_support import free_port, isolate
from trials import study as runner
from trials.mat_trial import flatten_nested
from trials.study_config import Cell, StudyConfigError, load_study, point_label, resolve
from trials.study_estimate import actual_seconds, passes_per_step

GOOD: dict[str, Any] = {
    "name": "t", "tasks": ["sst2"], "model": "minilm", "flags": "--epochs 1 --device cpu",
    "grid": {"learning_rate": ["3e-5", 1.0e-4]}, "tuning_seeds": [101], "report_seeds": [1, 2],
    "concurrency": 2, "baselines": ["vanilla"],
    "arms": {"vanilla": {"method": "vanilla"}, "vanilla_steps": {"method": "vanilla", "settings": {"epochs": 2}},
             "mat": {"method": "mat", "settings": {"sampling_times_theta": 2, "sampling_times_delta": 1}}},
}


def write(tmp_path: Path, **change: Any) -> Path:
    config = {**GOOD, **change}
    path = tmp_path / "study.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("change, field, words", [
    ({"arms": {"vanilla": {"method": "vanila"}}}, "arms.vanilla.method", "Did you mean 'vanilla'?"),
    ({"baselines": ["vanila_steps"]}, "baselines[0]", "unknown arm 'vanila_steps'"),
    ({"arms": {**GOOD["arms"], "mat": {"method": "mat", "grid": {"learning_rate": [1e-4]}}}}, "grid",
     "the same size"),
    ({"tuning_seeds": [1, 101]}, "report_seeds", "seeds [1] are also tuning_seeds"),
    ({"tasks": ["stsbb"]}, "tasks[0]", "Did you mean 'stsb'?"),
    ({"arms": {"vanilla": {"method": "vanilla", "settings": {"adv_steps": 2}}}}, "arms.vanilla",
     "unknown parameter 'adv_steps' for method vanilla"),
    ({"arms": {**GOOD["arms"], "mat": {"method": "mat", "settings": {"lambda_s": -1}}}}, "arms.mat", "lambda_s"),
    ({"flags": "--seed 3"}, "flags", "--seed is set per cell"),
    ({"flags": "--checkpoint_store /tmp/x"}, "flags", "--checkpoint_store is set per cell"),
    ({"flags": "--epohcs 3"}, "flags", "unrecognized arguments: --epohcs"),
    ({"arms": {**GOOD["arms"], "Mat": {"method": "mat"}}}, "arms.Mat", "lower-case"),
    ({"arms": {**GOOD["arms"], "mat": {"method": "mat", "settings": {"phase": "tune"}}}}, "arms.mat.settings.phase",
     "set by the study"),
    ({"concurrency": 0}, "concurrency", ">= 1"),
    ({"trial_concurrency": 2}, "trial_concurrency", "unknown study key"),
])
def test_a_bad_study_config_is_refused_naming_the_field(tmp_path: Path, change: dict[str, Any], field: str,
                                                        words: str) -> None:
    with pytest.raises(StudyConfigError) as e:
        load_study(write(tmp_path, **change))
    assert f"study.yml: {field}: " in str(e.value) and words in str(e.value)


def test_the_cli_refuses_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, tuning_seeds=[2])
    assert runner.main(["run", str(path), "--allow_dirty", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "report_seeds: seeds [2] are also tuning_seeds" in err
    assert not (tmp_path / "results").exists()


def test_run_refuses_a_task_the_study_does_not_have(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    assert runner.main(["run", str(path), "--allow_dirty", "--port", "1", "--tasks", "sst2,mnli"]) == 2
    err = capsys.readouterr().err
    assert "--tasks mnli: not in the study" in err and not (tmp_path / "results").exists()


def test_actual_seconds_read_wall_totals_and_cpu_sums(tmp_path: Path) -> None:
    costs = [{"wall_seconds": {"train": 900.0, "total": 1000.0}, "cpu_seconds": {"train": 390.5, "evaluate": 60.0}},
             {"wall_seconds": {"total": 800.0}}]  # written before cpu_seconds was kept
    paths = []
    for i, cost in enumerate(costs):
        rec = TrialRecord(f"t{i}", "vanilla", "cola", "m", 1, {}, status="SUCCEEDED", cost=cost)
        paths.append(write_record(rec, tmp_path / f"t{i}"))
    assert actual_seconds(paths) == [1000.0, 800.0]
    assert actual_seconds(paths, "cpu_seconds") == [450.5]


def test_cells_folders_and_the_space_gridsearch_walks(tmp_path: Path) -> None:
    from nni.algorithms.hpo.gridsearch_tuner import GridSearchTuner

    study = load_study(write(tmp_path))
    arms = study.enabled()
    assert [a.points for a in arms][0] == ((("learning_rate", 3e-5),), (("learning_rate", 1e-4),))
    cells = runner.missing(study, "sst2", "tune", arms)
    assert len(cells) == 3 * 2 * 1
    assert cells[0].folder() == "sst2/tune/vanilla-lr3e-05-seed101" and point_label(()) == "default"
    assert runner.missing(study, "sst2", "report", arms) == [], "no report cell before the tune phase is complete"
    tuner = GridSearchTuner()
    tuner.update_search_space(runner.space(study, cells))
    got = [flatten_nested(tuner.generate_parameters(i)) for i in range(len(cells))]
    assert got[3] == {"arm": "vanilla_steps", "method": "vanilla", "phase": "tune", "epochs": 2,
                      "learning_rate": 1e-4, "seed": 101}
    assert [(p["arm"], p["learning_rate"]) for p in got] == [(c.arm, dict(c.point)["learning_rate"]) for c in cells]
    with pytest.raises(Exception, match="fully explored"):
        tuner.generate_parameters(len(cells))


def test_the_trials_of_a_run_keep_their_checkpoints_in_the_store(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, flags="--epochs 1 --device cpu --checkpoint_every 50"))
    cells = runner.missing(study, "sst2", "tune", study.enabled())
    config = yaml.safe_load(runner.nni_config(study, "sst2", "tune", cells, tmp_path, 2, tmp_path / "store")
                            .read_text())
    words = config["trialCommand"].split()
    assert words[words.index("--checkpoint_store") + 1] == str(tmp_path / "store")
    assert words[words.index("--checkpoint_every") + 1] == "50"
    assert config["maxTrialNumber"] == len(cells) == 6 and config["tuner"]["name"] == "GridSearch"
    from mat.batching import default_cache_dir

    assert runner.default_store(study) == default_cache_dir() / "study-checkpoints" / "t"
    # a stopped trial's checkpoint, where the cell's next trial looks for it: status names the cell and step
    from mat.checkpoint import store_key

    folder = tmp_path / "store" / store_key(resolve(study, cells[4]))
    folder.mkdir(parents=True)
    for step in (7, 12):
        (folder / f"checkpoint-{step}.pt").write_bytes(b"")
    assert runner.resumable(study, "sst2", study.enabled(), tmp_path / "store") == [(cells[4], 12)]
    lines = runner.status_lines(study, study.enabled(), None, tmp_path / "store")
    assert f"  latest checkpoints in the store (a stopped trial resumes there): tune/{cells[4].folder().split('/')[-1]} " \
        "at step 12" in lines


def test_a_study_without_a_grid_reports_every_arm_at_its_settings(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, grid={}, tuning_seeds=None, records=str(tmp_path / "records"))
    study = load_study(path)
    arms = study.enabled()
    assert study.layout == "phased" and all(a.points == ((),) for a in arms)
    assert runner.missing(study, "sst2", "tune", arms) == [] and runner.chosen_points(study, "sst2", arms) == {
        "vanilla": (), "vanilla_steps": (), "mat": ()}
    cells = runner.missing(study, "sst2", "report", arms)
    assert [c.folder() for c in cells[:4]] == ["sst2/report/vanilla-seed1", "sst2/report/vanilla_steps-seed1",
                                               "sst2/report/mat-seed1", "sst2/report/vanilla-seed2"]
    rec = TrialRecord(trial_id="a", method="vanilla", task="sst2", model="minilm", seed=2, status="SUCCEEDED",
                      params={"arm": "vanilla_steps", "phase": "report", "epochs": 2.0, "seed": 2})
    write_record(rec, tmp_path / "records" / "sst2" / "report" / "vanilla_steps-seed2")
    assert len(runner.missing(study, "sst2", "report", arms)) == 5
    assert runner.main(["status", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sst2: report 1/6 cells have a record" in out and "tune" not in out
    assert "  vanilla_steps        report 1/2: - done" in out and "  mat                  report 0/2: - -" in out


def test_arm_parameters_switch_the_method_and_label_the_record() -> None:
    base = parse_cli(["--task", "sst2", "--model", "minilm", "--epochs", "3", "--max_grad_norm", "0.5"])
    cfg, labels = apply_study_params(base, {"method": "vanilla", "arm": "vanilla_steps", "phase": "tune",
                                            "epochs": 6, "learning_rate": 1e-4})
    assert (cfg.run.method, cfg.train.epochs, cfg.train.learning_rate, cfg.train.max_grad_norm) == ("vanilla", 6.0, 1e-4, 0.5)
    assert cfg.train.weight_decay_scope == "no_bias_norm", "vanilla's own default, not MAT's"
    assert labels == {"arm": "vanilla_steps", "phase": "tune"}
    mat, _ = apply_study_params(base, {"method": "mat", "learning_rate": 3e-4, "sampling_times_delta": 2})
    assert mat.method.sampling_step_theta == 3e-4 and mat.train.learning_rate == 3e-4, "γ_θ moves with the lr"
    for bad, words in (({"method": "matt"}, "Did you mean 'mat'?"), ({"phase": "test"}, "tune, report"),
                       ({"arm": "a b"}, "lower-case")):
        with pytest.raises(ValueError, match=words):
            apply_study_params(base, bad)


def test_the_benchmark_config_loads_and_its_arms_differ_only_in_their_own_settings() -> None:
    study = load_study(REPO / "studies" / "benchmark_cpu.yml")
    assert [a.name for a in study.enabled()] == ["vanilla", "vanilla_steps", "freelb", "smart", "r3f", "mat"]
    assert {a.name for a in study.arms if not a.enabled} == {"inner_steps", "dropout_consistency", "salt"}
    cfgs = {a.name: resolve(study, Cell("stsb", "tune", a.name, 1, a.points[1])) for a in study.arms}
    assert {n: c.train.learning_rate for n, c in cfgs.items()} == {n: 1e-4 for n in cfgs}
    assert {n: c.train.epochs for n, c in cfgs.items()} == {n: 6.0 if n == "vanilla_steps" else 3.0 for n in cfgs}
    assert all(c.run.diagnostics is False and c.run.group_by_length and c.run.eval_times == 4 for c in cfgs.values())
    # passes per step: docs/components.md's table for the MAT rungs, docs/methods.md's cost lines for the rest
    assert {n: passes_per_step(c) for n, c in cfgs.items()} == {
        "vanilla": 2, "vanilla_steps": 2, "freelb": 4, "smart": 7, "r3f": 4, "mat": 13, "inner_steps": 4,
        "dropout_consistency": 9, "salt": 10}


def test_status_prints_the_estimate_from_the_component_records(capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    if not (REPO / "results" / "components" / "stsb").is_dir():
        pytest.skip("no component-study records in this checkout")
    assert runner.main(["status", str(REPO / "studies" / "benchmark_cpu.yml")]) == 0
    out = capsys.readouterr().out
    counts = {(task, phase): len(list((REPO / "results" / "benchmark" / task / phase).glob("*/trial.json")))
              for task in ("stsb", "cola") for phase in ("tune", "report")}  # the committed records, as they land
    for task in ("stsb", "cola"):
        tune, report = counts[task, "tune"], counts[task, "report"]
        assert f"{task}: tune {tune}/18 cells, report {report}/30 cells have a record" in out
    line = next(x for x in out.splitlines() if x.startswith("whole study, estimate:"))
    hours = float(line.split(": ")[1].split(" ")[0])
    assert 18 < hours < 30 and "at 2 at a time" in line
    # the pace line: each arm's CPU seconds over its records / the estimate of those records, by hand
    estimate: dict[tuple[str, str], float] = {}
    task = ""
    for x in out.splitlines():
        if x.startswith(("stsb,", "cola,")):
            task = x.split(",")[0]
        elif task and " estimate " in x and x.startswith("  "):
            estimate[task, x.split()[0]] = float(x.split(" estimate ")[1].split(" s")[0])
    spent: dict[str, list[float]] = {}
    for (task, arm), secs in estimate.items():
        for path in (REPO / "results" / "benchmark" / task).glob(f"*/{arm}-*/trial.json"):
            cpu = read_record(path).cost.get("cpu_seconds")
            if cpu:
                sums = spent.setdefault(arm, [0.0, 0.0])
                sums[0], sums[1] = sums[0] + sum(cpu.values()), sums[1] + secs
    if not spent:
        return

    def check_ratios(line: str) -> None:
        for arm, (cpu_sum, est_sum) in spent.items():
            # printed estimates are rounded to the second: allow the last digit of the ratio to differ by one
            printed = float(line.split(f" {arm} ")[1].split("x")[0])
            assert abs(printed - cpu_sum / est_sum) <= 0.051, (arm, printed, cpu_sum / est_sum)

    complete = all(n == (18 if phase == "tune" else 30) for (_, phase), n in counts.items())
    # while cells are left, the pace line plans the rest; once every cell has its record, the ratios stand alone
    start = "every cell has its record;" if complete else "still to run, at the records' pace:"
    check_ratios(next(x for x in out.splitlines() if x.startswith(start)))
    assert ("still to run, estimate: 0.0 trial-hours" in out) == complete
    # the same records with a sixth report seed: its 12 cells are left, planned at the same ratios
    raw = yaml.safe_load((REPO / "studies" / "benchmark_cpu.yml").read_text())
    raw.update(name="benchmark_six_seeds", records=str(REPO / "results" / "benchmark"), report_seeds=[1, 2, 3, 4, 5, 6],
               estimate_from=str(REPO / "results" / "components"))
    (tmp_path / "six.yml").write_text(yaml.safe_dump(raw))
    assert runner.main(["status", str(tmp_path / "six.yml")]) == 0
    six = capsys.readouterr().out
    assert not any(x.startswith("every cell has its record;") for x in six.splitlines())
    assert "still to run, estimate: 0.0 trial-hours" not in six
    check_ratios(next(x for x in six.splitlines() if x.startswith("still to run, at the records' pace:")))


def test_a_phase_runs_its_longest_trials_first(tmp_path: Path) -> None:
    """GridSearch walks the cells in order: the benchmark's tune phase starts with MAT's (13 passes a step),
    then SMART's (7), ..., and ends with vanilla's (2), each arm's learning rates in grid order; a study
    without reference records keeps the study's order."""
    if not (REPO / "results" / "components" / "cola").is_dir():
        pytest.skip("no component-study records in this checkout")
    study = dataclasses.replace(load_study(REPO / "studies" / "benchmark_cpu.yml"), records=tmp_path)
    arms = study.enabled()
    cells = runner.missing(study, "cola", "tune", arms)
    assert [c.arm for c in cells][:3] == ["vanilla"] * 3
    ordered = runner.longest_first(study, "cola", cells)
    assert sorted(map(id, ordered)) == sorted(map(id, cells))
    # estimated seconds (status): mat 1503, smart 826, vanilla_steps 515, freelb = r3f 487 (study order), vanilla 261
    assert list(dict.fromkeys(c.arm for c in ordered)) == ["mat", "smart", "vanilla_steps", "freelb", "r3f", "vanilla"]
    assert [c.point for c in ordered if c.arm == "mat"] == [c.point for c in cells if c.arm == "mat"]
    no_estimate = dataclasses.replace(study, estimate_from=None)
    assert runner.longest_first(no_estimate, "cola", cells) == cells
    # the report phase stays seed-major (whole seeds to pair if stopped), longest first within each seed
    chosen = {a.name: a.points[0] for a in arms}
    report = runner.longest_first(study, "cola", runner.report_cells(study, "cola", chosen))
    assert [c.seed for c in report] == [s for s in study.report_seeds for _ in arms]
    assert [c.arm for c in report[:6]] == ["mat", "smart", "vanilla_steps", "freelb", "r3f", "vanilla"]


def test_an_arm_reports_as_soon_as_its_own_tuning_is_complete(tmp_path: Path) -> None:
    """With only vanilla's and FreeLB's CoLA tuning records in (the committed ones), what can run is the other
    arms' 12 tune cells, longest first, then vanilla's and FreeLB's report cells at the learning rates their
    selection halves chose (3e-5 and 1e-4), seed-major: one experiment keeps both slots busy."""
    import shutil

    committed = REPO / "results" / "benchmark" / "cola" / "tune"
    wanted = [f"{arm}-lr{lr}-seed101" for arm in ("vanilla", "freelb") for lr in ("3e-05", "0.0001", "0.0003")]
    if not all((committed / w / "trial.json").is_file() for w in wanted):
        pytest.skip("the benchmark's CoLA tuning records of vanilla and FreeLB are not in this checkout")
    for w in wanted:
        shutil.copytree(committed / w, tmp_path / "cola" / "tune" / w)
    study = dataclasses.replace(load_study(REPO / "studies" / "benchmark_cpu.yml"), records=tmp_path)
    label, cells = runner.ready_cells(study, "cola", study.enabled())
    assert label == "tune+report" and len(cells) == 12 + 2 * 5
    assert [c.phase for c in cells] == ["tune"] * 12 + ["report"] * 10
    assert list(dict.fromkeys(c.arm for c in cells[:12])) == ["mat", "smart", "vanilla_steps", "r3f"]
    report = cells[12:]
    assert [(c.arm, c.seed) for c in report[:4]] == [("freelb", 1), ("vanilla", 1), ("freelb", 2), ("vanilla", 2)]
    assert {c.arm: dict(c.point)["learning_rate"] for c in report} == {"vanilla": 3e-5, "freelb": 1e-4}
    done = dataclasses.replace(study, records=tmp_path / "none")
    assert runner.ready_cells(done, "cola", study.enabled())[0] == "tune"


# ------------------------------------------------------------------------------------- under real NNI

def tiny_study(root: Path, records: Path) -> Path:
    model, data = make_tiny_model_dir(root / "model"), make_tiny_glue_dir(root / "data", n_train=32, n_dev=16)
    config = {
        "name": "tiny", "records": str(records), "tasks": ["sst2"], "model": str(model), "python": sys.executable,
        "flags": f"--data_dir {data} --max_length 16 --epochs 1 --batch_size 16 --eval_times 2 --device cpu "
                 "--num_threads 1 --checkpoint_every 1",
        "grid": {"learning_rate": [1e-4, 3e-4]}, "tuning_seeds": [101], "report_seeds": [1, 2], "concurrency": 2,
        "arms": {"vanilla": {"method": "vanilla"}, "vanilla_steps": {"method": "vanilla", "settings": {"epochs": 2}},
                 "mat": {"method": "mat", "settings": {"sampling_times_theta": 2, "sampling_times_delta": 1,
                                                       "lambda_s": 1.0}}},
    }
    path = root / "tiny.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def kill_manager_when(home: Path, records: Path, n_records: int) -> threading.Thread:
    """SIGKILL the NNI manager (the node process under ``home``) once ``n_records`` tune records landed."""
    def watch() -> None:
        deadline = time.time() + 600
        while time.time() < deadline:
            if len(list((records / "sst2" / "tune").glob("*/trial.json"))) >= n_records:
                out = subprocess.run(["pgrep", "-f", f"node.*{home}"], capture_output=True, text=True).stdout
                for pid in out.split():
                    os.kill(int(pid), signal.SIGKILL)
                return
            time.sleep(0.5)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.nni  # about 3 minutes, and in `make test`: the study runner's resumability is its contract
def test_a_killed_manager_loses_no_cell_and_a_rerun_completes_the_study(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    records = tmp_path / "records"
    path = tiny_study(tmp_path, records)
    home = tmp_path / "home"
    isolate(monkeypatch, home)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    args = ["run", str(path), "--collect_every", "1", "--timeout", "600", "--allow_dirty"]
    watcher = kill_manager_when(home, records, 2)
    first = runner.main([*args, "--port", str(free_port())])
    watcher.join(timeout=5)
    out = capsys.readouterr().out
    assert first == 1, out  # the manager died in the tune phase: cells are missing
    study = load_study(path)
    done = runner.done_cells(study, "sst2")
    assert 2 <= len(done) < 6 and all(c.phase == "tune" for c, _ in done.values())
    before = {k: p.read_bytes() for k, (_, p) in done.items()}
    second = runner.main([*args, "--port", str(free_port())])
    out = capsys.readouterr().out
    assert second == 0, out
    done = runner.done_cells(study, "sst2")
    assert sorted(c.folder() for c, _ in done.values()) == sorted(
        [f"sst2/tune/{a}-lr{lr}-seed101" for a in ("vanilla", "vanilla_steps", "mat") for lr in ("0.0001", "0.0003")]
        + [f"sst2/report/{a}-seed{s}" for a in ("vanilla", "vanilla_steps", "mat") for s in (1, 2)])
    assert all(done[k][1].read_bytes() == b for k, b in before.items()), "a collected record is kept as it was"
    assert len(list(records.rglob("trial.json"))) == 12, "every cell exactly once"
    ids = [read_record(p).trial_id for _, p in done.values()]
    assert len(set(ids)) == 12, "each record from its own trial"
    chosen = runner.chosen_points(study, "sst2", study.enabled())
    assert chosen is not None
    for cell, p in done.values():
        rec = read_record(p)
        assert (rec.params["arm"], rec.params["phase"], rec.seed, rec.status) == (cell.arm, cell.phase, cell.seed,
                                                                                  "SUCCEEDED")
        assert rec.method == ("mat" if cell.arm == "mat" else "vanilla")
        assert rec.params["epochs"] == (2.0 if cell.arm == "vanilla_steps" else 1.0)
        # 32 examples in batches of 16: 2 steps an epoch; a trial resumed from the store costs the whole run
        steps = 4 if cell.arm == "vanilla_steps" else 2
        assert (rec.train_steps, rec.cost["optimizer_steps"]) == (steps, steps)
        assert rec.cost["optimizer_updates"] == steps * (2 if cell.arm == "mat" else 1)
        if cell.phase == "report":
            assert rec.params["learning_rate"] == dict(chosen[cell.arm])["learning_rate"]


def test_status_names_a_choice_at_the_grids_edge(capsys: pytest.CaptureFixture[str]) -> None:
    """CoLA's committed tuning: vanilla and R3F chose 3e-5, the smallest learning rate of the grid."""
    if not (REPO / "results" / "benchmark" / "cola" / "tune").is_dir():
        pytest.skip("no benchmark CoLA records in this checkout")
    assert runner.main(["status", str(REPO / "studies" / "benchmark_cpu.yml"), "--tasks", "cola"]) == 0
    lines = {x.split()[0]: x for x in capsys.readouterr().out.splitlines() if x.startswith("  ") and "tune:" in x}
    assert "chosen {'learning_rate': 3e-05} (the grid's lowest learning_rate);" in lines["vanilla"]
    assert "chosen {'learning_rate': 3e-05} (the grid's lowest learning_rate);" in lines["r3f"]
    assert "chosen {'learning_rate': 0.0001};" in lines["vanilla_steps"]
