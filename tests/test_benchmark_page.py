"""The benchmark page (``python -m analysis benchmark``) on hand-written records in a study's layout: the chosen
point is the selection-half best, the report table's numbers are the hand-computed ones, an incomplete study lists
its missing cells and compares no incomplete arm, and the page regenerates byte for byte."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from analysis.__main__ import main
from analysis.benchmark import summarise
from analysis.halves import selection_half
from analysis.load import load_with_notes
from analysis.study_plan import read_plan
from mat.spec.records import EvalResult, TrialRecord, encode_values, write_record
from tests.helpers import REPO

# An SST-2-like dev set of 8: splitmix64 puts examples 2, 4, 5, 6 in the selection half, 0, 1, 3, 7 in the report half
LABELS = [1, 0, 1, 1, 0, 0, 1, 0]
SEL, REP = [2, 4, 5, 6], [0, 1, 3, 7]
STUDY = """\
name: bench_test
records: records
tasks: [sst2, rte]
model: m
grid: {learning_rate: [1.0e-4, 3.0e-4]}
tuning_seeds: [101]
report_seeds: [1, 2, 3]
baselines: [vanilla, vanilla_steps]
arms:
  vanilla: {method: vanilla, about: plain}
  vanilla_steps: {method: vanilla, settings: {epochs: 6}, about: twice the epochs}
  mat: {method: mat, about: MAT}
  rdrop: {method: mat, enabled: false}
"""
# Tune trials (seed 101): per arm and learning rate, each evaluation's (selection-half, report-half) correct of 4.
# vanilla at 1e-4 is the better on the whole dev set (6/8 at its first evaluation) but 3e-4 is the better on the
# selection half (4/4 against 3/4), so 3e-4 is chosen; mat's best selection-half score is at 1e-4.
TUNE = {
    ("vanilla", 1e-4): [(2, 4), (3, 1)],   # selection half: 50, 75 -> 75
    ("vanilla", 3e-4): [(4, 0), (1, 1)],   # 100, 25 -> 100 (chosen)
    ("vanilla_steps", 1e-4): [(3, 3)],     # 75 (chosen)
    ("vanilla_steps", 3e-4): [(2, 4)],     # 50
    ("mat", 1e-4): [(1, 0), (4, 2)],       # 25, 100 -> 100 (chosen)
    ("mat", 3e-4): [(3, 4)],               # 75
}
CHOSEN = {"vanilla": 3e-4, "vanilla_steps": 1e-4, "mat": 1e-4}
# Report trials (seeds 1-3) at the chosen point: the report half's correct of 4 at the evaluation the selection half
# picks (the first, 3/4 on the selection half; the second has 1/4 there and 0/4 on the report half).
REPORT = {"vanilla": [2, 3, 2], "vanilla_steps": [3, 3, 2], "mat": [4, 3, 3]}  # 50 75 50 | 75 75 50 | 100 75 75
UPDATES = {"vanilla": 100, "vanilla_steps": 200, "mat": 200}


def preds(sel: int, rep: int) -> list[int]:
    """Predictions right on the first ``sel`` of the selection half's 4 examples and the first ``rep`` of the
    report half's, wrong on the rest."""
    p = [1 - y for y in LABELS]
    for i in SEL[:sel] + REP[:rep]:
        p[i] = LABELS[i]
    return p


def record(task: str, arm: str, phase: str, lr: float, seed: int, evals: list[tuple[int, int]],
           cpu: float | None = 10.0) -> TrialRecord:
    params = {"learning_rate": lr, "arm": arm, "phase": phase, "seed": seed}
    method = "vanilla" if arm.startswith("vanilla") else "mat"
    rec = TrialRecord(f"{task}-{arm}-{phase}-{lr:g}-{seed}", method, task, "m", seed, params, status="SUCCEEDED")
    for i, (s, r) in enumerate(evals, 1):
        whole = (s + r) / 8 * 100
        rec.evals.append(EvalResult(10 * i, float(i), {"accuracy": whole}, whole,
                                    predictions={"validation": encode_values(preds(s, r), False)}))
    rec.best, rec.final = max(rec.evals, key=lambda e: e.score), rec.evals[-1]
    rec.dev_labels = {"validation": encode_values(LABELS, False)}
    updates = UPDATES[arm]
    rec.cost = {"wall_seconds": {"train": 2.0 * updates + seed}, "optimizer_steps": 100, "optimizer_updates": updates,
                "passes": {"forward": 100.0 * updates / 50, "backward": 100.0},
                "diagnostic_passes": {"forward": 0.0, "backward": 0.0}}
    if cpu is not None:
        rec.cost["cpu_seconds"] = {"train": cpu * updates / 100 + seed}
    return rec


def write_study(root: Path) -> tuple[Path, Path]:
    """The study config and its records: sst2 complete (plus one report trial at a point its arm did not choose);
    rte: vanilla tuned, mat at one point of two, vanilla_steps not started."""
    root.mkdir(parents=True)
    (root / "study.yml").write_text(STUDY)
    recs = root / "records"
    for (arm, lr), evals in TUNE.items():
        write_record(record("sst2", arm, "tune", lr, 101, evals), recs / f"sst2/tune/{arm}-lr{lr:g}-seed101")
    for arm, correct in REPORT.items():
        for seed, r in zip((1, 2, 3), correct):
            write_record(record("sst2", arm, "report", CHOSEN[arm], seed, [(3, r), (1, 0)]),
                         recs / f"sst2/report/{arm}-seed{seed}")
    write_record(record("sst2", "vanilla", "report", 1e-4, 1, [(3, 4)]), recs / "stray/vanilla-lr1e-4-seed1")
    for lr in (1e-4, 3e-4):
        write_record(record("rte", "vanilla", "tune", lr, 101, TUNE[("vanilla", lr)]), recs / f"rte/tune/vanilla-lr{lr:g}-seed101")
    write_record(record("rte", "mat", "tune", 1e-4, 101, [(2, 2)]), recs / "rte/tune/mat-lr0.0001-seed101")
    return root / "study.yml", recs


@pytest.fixture()
def study(tmp_path: Path) -> tuple[Path, Path]:
    return write_study(tmp_path / "s")


def bench(study: tuple[Path, Path]):  # -> Benchmark
    return summarise(load_with_notes([study[1]]).frame, read_plan(study[0]))


def test_the_dev_set_halves_are_the_ones_the_records_are_written_for() -> None:
    assert [i for i, s in enumerate(selection_half(8)) if s] == SEL


def test_the_chosen_point_per_arm_is_the_selection_half_best(study: tuple[Path, Path]) -> None:
    b = bench(study)
    t = b.tuning[b.tuning["task"] == "sst2"].set_index(["arm", "point"])
    assert t["selection_mean"].to_dict() == {("vanilla", 0): 75.0, ("vanilla", 1): 100.0, ("vanilla_steps", 0): 75.0,
                                             ("vanilla_steps", 1): 50.0, ("mat", 0): 100.0, ("mat", 1): 75.0}
    chosen = {a: b.plan.points[a][int(p)][0][1] for (a, p), c in t["chosen"].items() if c}
    assert chosen == CHOSEN, "vanilla: 3e-4 (100 on the selection half), though 1e-4 is the better on the whole dev set"
    rte = b.tuning[b.tuning["task"] == "rte"]
    assert set(rte.loc[rte["chosen"], "arm"]) == {"vanilla"}, "mat ran one point of two: no choice yet"


def test_the_report_numbers_are_the_hand_computed_ones(study: tuple[Path, Path]) -> None:
    b = bench(study)
    r = b.report[b.report["task"] == "sst2"].set_index("arm")
    assert r.loc["vanilla", "mean"] == pytest.approx(175 / 3), "50, 75, 50: the stray report trial at 1e-4 left out"
    assert r.loc["mat", "mean"] == pytest.approx(250 / 3) and r.loc["mat", "std"] == pytest.approx(math.sqrt(625 / 3))
    # mat − vanilla per seed: +50, 0, +25; mean 25, sd 25, t = 25 / (25 / √3) = √3 on 2 degrees of freedom
    half = stats.t.ppf(0.975, 2) * 25 / math.sqrt(3)
    assert r.loc["mat", ["vs_vanilla_mean_diff", "vs_vanilla_ci_low", "vs_vanilla_ci_high"]].tolist() == pytest.approx(
        [25.0, 25 - half, 25 + half])
    p_mat = 2 * stats.t.sf(math.sqrt(3), 2)
    assert r.loc["mat", "vs_vanilla_p_value"] == pytest.approx(p_mat)
    assert r.loc["mat", "vs_vanilla_wilcoxon_p"] == pytest.approx(0.5), "the zero difference dropped: 2 of 2 positive"
    assert r.loc["mat", "vs_vanilla_steps_mean_diff"] == pytest.approx(50 / 3)  # +25, 0, +25
    assert r.loc["vanilla_steps", "vs_vanilla_mean_diff"] == pytest.approx(25 / 3)  # +25, 0, 0
    assert r.loc["vanilla", "vs_vanilla_steps_n_pairs"] == 0, "vanilla − vanilla_steps is the row above negated"
    # Holm over the table's three comparisons: the smallest p times 3, the next times 2 (kept monotone), the last
    raw = {("mat", "vanilla"): p_mat, ("mat", "vanilla_steps"): r.loc["mat", "vs_vanilla_steps_p_value"],
           ("vanilla_steps", "vanilla"): r.loc["vanilla_steps", "vs_vanilla_p_value"]}
    order = sorted(raw, key=raw.get)
    want = {}
    for i, k in enumerate(order):
        want[k] = max([min(1.0, (3 - j) * raw[order[j]]) for j in range(i + 1)])
    assert {k: r.loc[k[0], f"vs_{k[1]}_holm_p"] for k in raw} == pytest.approx(want)
    # compute: mean optimizer updates, (forward + backward) per step, mean training CPU seconds (10 x updates/100 + seed)
    assert r.loc["mat", ["updates", "passes_per_step", "train_seconds"]].tolist() == pytest.approx([200, 5.0, 22.0])
    assert set(r["seconds"]) == {"cpu"}


def test_cpu_seconds_fall_back_to_wall_seconds_with_a_note(study: tuple[Path, Path]) -> None:
    path = study[1] / "sst2/report/mat-seed1/trial.json"
    rec = json.loads(path.read_text())
    del rec["cost"]["cpu_seconds"]
    path.write_text(json.dumps(rec))
    b = bench(study)
    r = b.report[b.report["task"] == "sst2"].set_index("arm")
    assert set(r["seconds"]) == {"wall"} and r.loc["mat", "train_seconds"] == pytest.approx(402.0)  # 2 x 200 + 2
    assert main(["benchmark", "--study", str(study[0]), "--records", str(study[1]), "--out", str(study[0].parent / "o")]) == 0
    assert "these records predate CPU time" in (study[0].parent / "o" / "benchmark.md").read_text()


def test_an_incomplete_study_lists_its_missing_cells_and_compares_no_incomplete_arm(study: tuple[Path, Path]) -> None:
    shutil.rmtree(study[1] / "sst2/report/mat-seed2")
    out = study[0].parent / "page"
    assert main(["benchmark", "--study", str(study[0]), "--records", str(study[1]), "--out", str(out)]) == 0
    md = (out / "benchmark.md").read_text()
    b = bench(study)
    r = b.report[b.report["task"] == "sst2"].set_index("arm")
    assert not r.loc["mat", "complete"] and math.isnan(r.loc["mat", "mean"])
    assert (r.loc["mat", ["vs_vanilla_n_pairs", "vs_vanilla_steps_n_pairs"]] == 0).all()
    assert r.loc["vanilla_steps", "vs_vanilla_holm_p"] == pytest.approx(r.loc["vanilla_steps", "vs_vanilla_p_value"]), \
        "one comparison left in the table: Holm changes nothing"
    assert "| mat | learning_rate 0.0001 | incomplete: 2 of 3 seeds | - | - | - | - | - | - |" in md
    assert "- SST-2, mat: 2 of 3 report seeds have records: no comparison yet." in md
    assert "SST-2, mat − " not in md, "no sentence compares an incomplete arm"
    assert "| SST-2 | mat | 2 of 2 | - | learning_rate 0.0001 | 2 of 3 | seed 2 |" in md
    assert "| RTE | mat | 1 of 2 | learning_rate 0.0003 (seed 101) | - | 0 of 3 | waits for its tune phase |" in md
    assert "| RTE | vanilla_steps | 0 of 2 | all 2 points (seed 101) | - | 0 of 3 | waits for its tune phase |" in md
    assert "| RTE | vanilla | 2 of 2 | - | learning_rate 0.0003 | 0 of 3 | seeds 1-3 |" in md, \
        "a tuned arm's report cells run while other arms still tune"
    assert "- RTE: 3 of 6 tune cells and 0 of 9 report cells have records; 0 of 3 arms complete (in progress)." in md
    assert "No arm has all its report seeds on RTE yet: no scores and no comparisons." in md
    assert "rdrop" not in md, "an arm that is off and has no records is not part of the page"
    stray = "stray/vanilla-lr1e-4-seed1/trial.json`: ran learning_rate 0.0001, but the tune records choose learning_rate 0.0003"
    assert stray in md


def test_the_page_says_what_the_intervals_allow_and_draws_the_complete_arms(study: tuple[Path, Path]) -> None:
    out = study[0].parent / "page"
    assert main(["benchmark", "--study", str(study[0]), "--records", str(study[1]), "--out", str(out), "--title",
                 "The benchmark"]) == 0
    md = (out / "benchmark.md").read_text()
    assert md.startswith("# The benchmark\n\n- Study: ")
    assert "| mat | learning_rate 0.0001 | 83.33 ± 14.43 (3) |" in md
    assert "- SST-2, mat − vanilla: no difference detectable with 3 seeds (+25.00, interval [-37.10, +87.10] holds 0)." in md
    assert "| vanilla | 75.00 | 100.00 (chosen) | learning_rate 0.0003 |" in md
    assert (out / "figures" / "benchmark_compute_m.png").is_file() and "figures/benchmark_compute_m.png" in md
    numbers = pd.read_csv(out / "tables" / "benchmark_sst2_m.csv", index_col="arm")
    assert numbers.loc["mat", "vs_vanilla_mean_diff"] == pytest.approx(25.0)


def test_the_page_is_byte_identical_when_generated_twice(study: tuple[Path, Path]) -> None:
    outs = [study[0].parent / "a", study[0].parent / "b"]
    for out in outs:
        assert main(["benchmark", "--study", str(study[0]), "--records", str(study[1]), "--out", str(out)]) == 0
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(outs[1]) for p in outs[1].rglob("*") if p.is_file())
    assert any(f.suffix == ".png" for f in files)
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f


def test_the_page_is_written_without_torch_transformers_or_nni(study: tuple[Path, Path]) -> None:
    import subprocess
    import sys

    from tests.test_analysis_cli import BLOCKED_MAIN

    args = ["benchmark", "--study", str(study[0]), "--records", str(study[1]), "--out", str(study[0].parent / "o")]
    out = subprocess.run([sys.executable, "-c", BLOCKED_MAIN, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("19 finished trials; SST-2: 6/6 tune, 9/9 report cells; RTE: 3/6 tune, 0/9 report")


def test_a_study_without_records_folder_or_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "study.yml").write_text(STUDY)
    assert main(["benchmark", "--study", str(tmp_path / "study.yml"), "--records", str(tmp_path / "none"),
                 "--out", str(tmp_path / "o")]) == 1
    assert main(["benchmark", "--study", str(tmp_path / "missing.yml"), "--out", str(tmp_path / "o")]) == 1


def test_a_study_record_without_dev_predictions_is_refused_by_name(study: tuple[Path, Path],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = study[1] / "sst2/report/mat-seed1/trial.json"
    rec = json.loads(path.read_text())
    rec.pop("dev_labels")
    for ev in rec["evals"]:
        ev.pop("predictions")
    path.write_text(json.dumps(rec))
    assert main(["benchmark", "--study", str(study[0]), "--records", str(study[1]), "--out", str(study[0].parent / "o")]) == 1
    assert "mat-seed1/trial.json" in capsys.readouterr().err


def test_the_plan_reads_the_study_configs_as_the_runner_does() -> None:
    from trials.study_config import load_study

    for path in sorted((REPO / "studies").glob("*.yml")):
        plan, study = read_plan(path), load_study(path)
        assert (plan.tasks, plan.model, plan.records) == (study.tasks, study.model, study.records), path
        assert plan.enabled == tuple(a.name for a in study.enabled()) and plan.arms == tuple(a.name for a in study.arms)
        assert {a.name: a.points for a in study.arms} == dict(plan.points), path
        assert (plan.tuning_seeds, plan.report_seeds, plan.baselines) == (study.tuning_seeds, study.report_seeds,
                                                                          study.baselines)


PAGE = ["benchmark", "--study", "studies/benchmark_cpu.yml", "--page", "benchmark.md", "--title",
        "MAT against its baselines: the CPU benchmark", "--preface", "results/benchmark/README.md"]


def test_the_committed_benchmark_page_regenerates_from_the_committed_records(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/benchmark.md and its tables are what the page makes of results/benchmark/ today (run as the page says,
    from the repository root): records added without regenerating the page fail here. Figures are left out (their
    bytes depend on the machine's fonts)."""
    if not (REPO / "docs" / "benchmark.md").is_file():
        pytest.skip("no benchmark page committed")
    monkeypatch.chdir(REPO)
    assert main([*PAGE, "--out", str(tmp_path)]) == 0
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".md", ".csv", ".tex"))
    committed = sorted(p.relative_to(REPO / "docs") for p in (REPO / "docs" / "tables").glob("benchmark_*"))
    assert [p for p in made if p.parts[0] == "tables"] == committed, "regenerate the page: tables differ"
    here = f"]({Path(os.path.relpath(REPO / 'docs', tmp_path)).as_posix()}/"  # the preface's links, rebased to tmp_path
    for rel in made:
        assert (tmp_path / rel).read_text().replace(here, "](") == (REPO / "docs" / rel).read_text(), f"docs/{rel} is stale"


SLICE_PAGE = ["benchmark", "--study", "results/benchmark_gpu_slice/study.yml", "--page", "benchmark.md", "--title",
              "The benchmark's slice on one GPU", "--preface", "results/benchmark_gpu_slice/README.md"]


def test_the_committed_gpu_slice_page_regenerates_from_its_records(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/gpu_slice/ is what the page makes of results/benchmark_gpu_slice/ (30 records from one H200), tables
    included, and it says nothing of the arms: with two report seeds no interval excludes 0, and r3f's tie with
    vanilla on both seeds (+2.11, 3 of 142 examples each) is said as no spread, not as a difference."""
    if not (REPO / "docs" / "gpu_slice" / "benchmark.md").is_file():
        pytest.skip("no GPU slice page committed")
    monkeypatch.chdir(REPO)
    assert main([*SLICE_PAGE, "--out", str(tmp_path)]) == 0
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".md", ".csv", ".tex"))
    committed = sorted(p.relative_to(REPO / "docs" / "gpu_slice") for p in (REPO / "docs" / "gpu_slice").rglob("*")
                       if p.suffix in (".md", ".csv", ".tex"))
    assert made == committed, "regenerate the GPU slice page: its files differ"
    here = f"]({Path(os.path.relpath(REPO / 'docs' / 'gpu_slice', tmp_path)).as_posix()}/"
    for rel in made:
        assert (tmp_path / rel).read_text().replace(here, "](") == (REPO / "docs" / "gpu_slice" / rel).read_text(), \
            f"docs/gpu_slice/{rel} is stale"
    page = (tmp_path / "benchmark.md").read_text()
    assert "RTE: 18 of 18 tune cells and 12 of 12 report cells have records" in page
    assert "excludes 0" not in page
    assert "RTE, r3f − vanilla: +2.11 on each of the 2 seeds, with no spread" in page


def test_every_number_the_benchmark_preface_quotes_is_one_the_page_computes() -> None:
    """The findings written in results/benchmark/README.md (the page's preface) may quote only intervals, means and
    p-values the computed part of docs/benchmark.md holds, character for character."""
    import re

    from analysis.__main__ import rebase_links

    readme = REPO / "results" / "benchmark" / "README.md"
    if not readme.is_file() or not (REPO / "docs" / "benchmark.md").is_file():
        pytest.skip("no benchmark preface or page committed")
    preface = rebase_links(readme.read_text(encoding="utf-8"), readme.parent, REPO / "docs")
    page = (REPO / "docs" / "benchmark.md").read_text(encoding="utf-8")
    assert preface.strip() in page, "docs/benchmark.md does not carry the current preface: regenerate it"
    number = r"[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
    quotes = re.findall(rf"\[{number}, {number}\]|{number} ± {number} \(\d\)|p[=<]{number}", preface)
    if "## What the study finds" not in preface:
        assert quotes == [], "the preface quotes numbers before the study has findings"
        return
    computed = page.replace(preface.strip(), "", 1)
    stale = [q for q in quotes if q not in computed]
    assert stale == [], f"quoted in results/benchmark/README.md but not in the computed page: {stale}"


def test_a_local_model_folder_is_named_by_its_own_name() -> None:
    from analysis.benchmark_page import model_label

    assert model_label("/data/users/a/models/minilm16") == "minilm16"
    assert model_label("~/models/bert-ft/") == "bert-ft"
    assert model_label("./out/run1") == "run1" and model_label("../m") == "m"
    assert model_label("bert-base-uncased") == "bert-base-uncased" and model_label("minilm") == "minilm"
    assert model_label("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_a_choice_at_the_grids_edge_is_marked() -> None:
    from analysis.study_plan import grid_edges

    lr = tuple(((("learning_rate", v),) for v in (3e-5, 1e-4, 3e-4)))
    assert grid_edges(lr, lr[0]) == ["lowest learning_rate"] and grid_edges(lr, lr[2]) == ["highest learning_rate"]
    assert grid_edges(lr, lr[1]) == []
    assert grid_edges(lr[:2], lr[0]) == []  # two values: no inside to be at the edge of
    two = tuple((("learning_rate", a), ("warmup_ratio", w)) for a in (1e-5, 2e-5, 3e-5) for w in (0.0, 0.06, 0.1))
    assert grid_edges(two, (("learning_rate", 2e-5), ("warmup_ratio", 0.1))) == ["highest warmup_ratio"]
    words = tuple(((("rung", r),) for r in ("a", "b", "c")))
    assert grid_edges(words, words[0]) == []  # not numbers: no order


def test_the_committed_page_marks_the_arms_chosen_at_the_grids_edge() -> None:
    """CoLA's vanilla and R3F chose the smallest learning rate of the grid (3e-5): the page says so."""
    page = REPO / "docs" / "benchmark.md"
    if not page.is_file() or not (REPO / "results" / "benchmark" / "cola" / "tune").is_dir():
        pytest.skip("no benchmark page or CoLA tuning records committed")
    cola = page.read_text(encoding="utf-8").split("**Tuning, CoLA")[1].split("_Each tune trial")[0]
    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in cola.splitlines()
            if line.startswith("| ") and not line.startswith("| arm")}
    assert rows["vanilla"] == rows["r3f"] == "learning_rate 3e-05 (the grid's lowest learning_rate)"
    assert rows["vanilla_steps"] == "learning_rate 0.0001"
