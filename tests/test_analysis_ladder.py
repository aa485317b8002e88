"""The component-ladder report (issue 14) on synthetic records: the per-task rung table (paired differences to
vanilla and to the previous rung), the findings the intervals allow, the box plot, accuracy against compute,
the telemetry over training, and a page that regenerates identically."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import aggregate, ladder, ladder_report, telemetry
from analysis.__main__ import main
from analysis.load import load_records
from analysis.synthetic import RUNG_PASSES, ladder_records, synthetic_records, write_records
from analysis.tidy import TELEMETRY, TRAIN
from mat.spec.ladder import RUNG_NAMES

TASKS = ("rte", "cola")


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ladder_records")
    write_records(ladder_records(TASKS), root / "ladder")
    write_records(synthetic_records(("vanilla", "mat"), ("rte",), (1, 2), n_evals=2), root / "plain")
    return root


@pytest.fixture(scope="module")
def frame(records: Path) -> pd.DataFrame:
    return load_records(records)


@pytest.fixture(scope="module")
def rows(frame: pd.DataFrame) -> pd.DataFrame:
    _plain, rungs = ladder.split_rungs(aggregate.trial_scores(frame))
    return ladder.ladder_rows(rungs)


def test_tidy_frame_holds_telemetry_and_cost(frame: pd.DataFrame) -> None:
    tele = frame[frame["kind"] == TELEMETRY]
    assert set(tele["split"]) == {TRAIN} and {"loss", "delta_own_kl", "dropout_kl"} <= set(tele["metric"])
    one = tele[(tele["trial"] == "mat_visible_delta-rte-s1") & (tele["metric"] == "delta_own_kl")]
    assert list(one["step"]) == [50, 100, 150, 200] and one["value"].iloc[0] == pytest.approx(4e-3)
    mat = frame[frame["trial"] == "mat-rte-s2"].iloc[0]
    assert (mat["cost.passes.forward"], mat["cost.optimizer_steps"], mat["param.rung"]) == (RUNG_PASSES["mat"][0] * 200, 200, "mat")
    assert pd.isna(frame[frame["trial"] == "mat-rte-c0-s1"].iloc[0]["param.rung"]), "plain trials have no rung"


def test_split_rungs_labels_rows_by_rung(frame: pd.DataFrame) -> None:
    plain, rungs = ladder.split_rungs(aggregate.trial_scores(frame))
    assert set(rungs["arm"]) == set(RUNG_NAMES) and set(plain["arm"]) == {"vanilla", "mat"}
    assert set(rungs.loc[rungs["arm"] == "sampling", "method"]) == {"mat"}, "the arm is the rung, not the method"
    assert plain["param.rung"].isna().all()


def test_ladder_rows_by_hand(rows: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert list(rows[rows["task"] == "rte"]["rung"]) == list(RUNG_NAMES), "ladder order"
    scores = aggregate.trial_scores(frame)
    score = scores[(scores["metric"] == "score") & (scores["split"] == "dev") & scores["param.rung"].notna()]
    by = {(r, t): g.set_index("seed")["value"].sort_index() for (r, t), g in score.groupby(["param.rung", "task"])}
    row = rows[(rows["task"] == "rte") & (rows["rung"] == "mat")].iloc[0]
    a, v, prev = by[("mat", "rte")], by[("vanilla", "rte")], by[("dropout_consistency", "rte")]
    assert (row["n"], row["seeds"], row["previous"]) == (5, "1,2,3,4,5", "dropout_consistency")
    assert row["mean"] == pytest.approx(a.mean()) and row["std"] == pytest.approx(a.std(ddof=1))
    d = (a - v).to_numpy()
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (row["vs_vanilla_mean_diff"], row["vs_vanilla_ci_low"], row["vs_vanilla_ci_high"]) == pytest.approx(
        (d.mean(), d.mean() - half, d.mean() + half))
    assert row["vs_vanilla_p_value"] == pytest.approx(stats.ttest_rel(a, v).pvalue)
    assert row["vs_previous_mean_diff"] == pytest.approx((a - prev).mean()) and row["vs_previous_n_pairs"] == 5
    assert row["passes_per_step"] == sum(RUNG_PASSES["mat"]) and row["train_seconds"] == pytest.approx(10.0 * sum(RUNG_PASSES["mat"]))
    r3f = rows[(rows["task"] == "rte") & (rows["rung"] == "r3f")].iloc[0]
    assert r3f["previous"] == "vanilla" and r3f["vs_previous_mean_diff"] == pytest.approx(r3f["vs_vanilla_mean_diff"])
    base = rows[(rows["task"] == "rte") & (rows["rung"] == "vanilla")].iloc[0]
    assert base["vs_vanilla_n_pairs"] == 0 and math.isnan(base["vs_vanilla_mean_diff"])


def test_findings_claim_no_more_than_the_intervals(rows: pd.DataFrame) -> None:
    t = rows[rows["task"] == "rte"]
    lines = ladder.findings(t)
    for _i, r in t.iterrows():
        if r["rung"] == "vanilla":
            continue
        [line] = [x for x in lines if x.startswith(f"RTE, {r['rung']} − {r['previous']}:")]
        holds_zero = r["vs_previous_ci_low"] <= 0 <= r["vs_previous_ci_high"]
        assert ("no difference detectable with 5 seeds" in line) == holds_zero, line
    wide = t.assign(vs_previous_ci_low=-9.0, vs_previous_ci_high=9.0, vs_vanilla_ci_low=-9.0, vs_vanilla_ci_high=9.0)
    said = ladder.findings(wide)
    assert len(said) == 10 and all("no difference detectable with 5 seeds" in x for x in said)  # 4 rungs x 2, 2 x 1


def test_a_difference_says_whether_it_survives_holm_over_the_table(rows: pd.DataFrame) -> None:
    """Two comparisons exclude 0 at raw p 0.01 and 0.04 (and the other 8 are wide, p 0.5): Holm over the 10
    makes them 0.1 and 0.04 x 9 = 0.36 (both above 0.05), so each sentence keeps its interval and adds that it
    does not hold; at p 0.001 the first becomes 0.01 and holds."""
    t = rows[rows["task"] == "rte"].assign(vs_previous_ci_low=-9.0, vs_previous_ci_high=9.0, vs_previous_p_value=0.5,
                                           vs_vanilla_ci_low=-9.0, vs_vanilla_ci_high=9.0, vs_vanilla_p_value=0.5)
    first, second = t.index[t["rung"] == "sampling"][0], t.index[t["rung"] == "mat"][0]
    t.loc[[first, second], "vs_vanilla_ci_low"] = 0.5
    t.loc[first, "vs_vanilla_p_value"], t.loc[second, "vs_vanilla_p_value"] = 0.01, 0.04
    said = {x.split(":")[0]: x for x in ladder.findings(t)}
    w = ladder.p_clause(t.loc[first, "vs_vanilla_wilcoxon_p"])
    assert said["RTE, sampling − vanilla"].endswith(f"(paired t p=0.01, Wilcoxon {w}, 5 seeds); Holm over the "
                                                    "table's 10 comparisons: p=0.1, does not hold at 5%.")
    assert "Holm over the table's 10 comparisons: p=0.36, does not hold" in said["RTE, mat − vanilla"]
    assert sum("Holm" in x for x in said.values()) == 2
    t.loc[first, "vs_vanilla_p_value"] = 0.001
    [line] = [x for x in ladder.findings(t) if x.startswith("RTE, sampling − vanilla:")]
    assert line.endswith("comparisons: p=0.01, holds at 5%.")


def test_table_has_a_row_per_rung(rows: pd.DataFrame) -> None:
    t = ladder.ladder_table(rows[rows["task"] == "cola"], "t", "ladder_cola")
    assert list(t.cells.index) == list(RUNG_NAMES)
    assert list(t.cells.columns) == ["dev score, best", "− vanilla, best", "− previous rung, best", "passes/step",
                                     "updates/step", "train s"]
    assert t.cells.loc["vanilla", "− vanilla, best"] == "-" and "(5 pairs)" in t.cells.loc["mat", "− vanilla, best"]
    r = rows[(rows["task"] == "cola") & (rows["rung"] == "mat")].iloc[0]
    assert t.cells.loc["mat", "− vanilla, best"].endswith(
        f"; t {ladder.p_clause(r['vs_vanilla_p_value'])}, W {ladder.p_clause(r['vs_vanilla_wilcoxon_p'])} (5 pairs)")
    assert t.cells.loc["mat", "− previous rung, best"].startswith("vs dropout_consistency: ")
    assert t.numbers.loc["mat", "passes_per_step"] == sum(RUNG_PASSES["mat"])
    assert (t.cells.loc["mat", "updates/step"], t.cells.loc["r3f", "updates/step"]) == ("2.0", "1.0")


def test_best_and_last_side_by_side_and_what_the_difference_means(frame: pd.DataFrame) -> None:
    """Each selection's per-seed rows give their own rows; the table shows them side by side with best − last
    per rung (by hand: the synthetic best is the 4th of 4 rising evaluations, i.e. the last: a gap of 0, except
    where noise made an earlier one higher); a finding says when the two selections disagree."""
    by = {}
    for sel in ("best", "last"):
        per_seed = ladder.split_rungs(aggregate.trial_scores(frame, sel))[1]
        by[sel] = (per_seed, ladder.ladder_rows(per_seed, selection=sel))
    gap = ladder.selection_gap(by["best"][0], by["last"][0])
    dev = by["best"][0][(by["best"][0]["metric"] == "score") & (by["best"][0]["split"] == "dev")]
    last = by["last"][0][(by["last"][0]["metric"] == "score") & (by["last"][0]["split"] == "dev")]
    both = dev.merge(last, on=["experiment", "trial"])
    want = both[both["arm_x"] == "mat"].query("task_x == 'rte'").eval("value_x - value_y")
    g = gap.set_index(["task", "rung"]).loc[("rte", "mat")]
    assert g["gap"] == pytest.approx(want.mean()) and g["gap_n"] == 5 and g["gap"] >= 0
    stacked = pd.concat([r[r["task"] == "rte"] for _p, r in by.values()], ignore_index=True)
    t = ladder.ladder_table(stacked, "t", "ladder_rte", gap=gap[gap["task"] == "rte"])
    assert list(t.cells.columns)[:5] == ["dev score, best", "dev score, last", "best − last", "− vanilla, best",
                                         "− vanilla, last"]
    assert t.cells.loc["mat", "best − last"] == ladder.fmt_signed(g["gap"])
    best_rows, last_rows = by["best"][1], by["last"][1]
    rte_b, rte_l = best_rows[best_rows["task"] == "rte"], last_rows[last_rows["task"] == "rte"]
    said = ladder.findings(rte_b, other=rte_l)
    assert all("With the last evaluation: " in x for x in said if "no seeds" not in x)
    # an interval that excludes 0 under best and holds it under last: the sentence says the conclusion depends on it
    i = rte_b.index[rte_b["rung"] == "sampling"][0]
    b2 = rte_b.copy()
    b2.loc[i, ["vs_vanilla_mean_diff", "vs_vanilla_ci_low", "vs_vanilla_ci_high", "vs_vanilla_p_value"]] = [1.0, 0.2, 1.8, 0.03]
    l2 = rte_l.copy()
    l2.loc[l2["rung"] == "sampling", ["vs_vanilla_mean_diff", "vs_vanilla_ci_low", "vs_vanilla_ci_high"]] = [0.9, -0.1, 1.9]
    [line] = [x for x in ladder.findings(b2, other=l2) if x.startswith("RTE, sampling − vanilla:")]
    assert line.endswith("With the last evaluation: +0.90 [-0.10, +1.90], which holds 0: this conclusion depends on "
                         "which evaluation is scored.")


def test_telemetry_info_and_plot(frame: pd.DataFrame) -> None:
    info = telemetry.telemetry_info(frame[frame["param.rung"].notna()], stats=["delta_own_kl", "loss"])
    one = info[(info["task"] == "rte") & (info["group"] == "mat_visible_delta") & (info["stat"] == "delta_own_kl")]
    assert list(one["step"]) == [50, 100, 150, 200] and list(one["n"]) == [5] * 4
    assert one["mean"].to_numpy() == pytest.approx(4e-3 / np.arange(1, 5))
    assert set(info[info["stat"] == "delta_own_kl"]["group"]) == {"dropout_consistency", "mat", "mat_visible_delta"}
    fig = telemetry.telemetry_plot(info)
    axes = fig.axes
    assert len(axes) == 4  # 2 statistics x 2 tasks
    own_rte = next(ax for ax in axes if ax.get_title() == "RTE: δ's own ℓ_s (same dropout mask)")
    assert own_rte.get_yscale() == "log" and len(own_rte.get_lines()) == 3
    assert telemetry.group_order(["r3f", "mat", "vanilla", "freelb"]) == ["vanilla", "mat", "r3f", "freelb"]


def test_report_writes_the_ladder_page_and_regenerates_it_identically(records: Path, tmp_path: Path) -> None:
    pages = []
    preface = tmp_path / "preface.md"
    preface.write_text("The study: MiniLM, K = 2.\n\n| cell | state |\n|---|---|\n")
    for out in (tmp_path / "a", tmp_path / "b"):
        assert main(["report", "--records", str(records / "ladder"), "--out", str(out), "--page", "results.md",
                     "--title", "Which part of MAT acts", "--preface", str(preface)]) == 0
        pages.append(out)
    md = (pages[0] / "results.md").read_text()
    assert md.startswith("# Which part of MAT acts\n\nThe study: MiniLM, K = 2.\n\n| cell | state |\n|---|---|\n\n- Source: records")
    assert main(["report", "--records", str(records / "ladder"), "--out", str(tmp_path / "c"), "--preface", str(tmp_path / "none.md")]) == 1
    assert not (pages[0] / "report.md").exists()
    assert md.count("#### RTE") == 1 and md.count("#### CoLA") == 1 and "## Component ladder" in md
    for name in ("ladder_box_minilm", "ladder_compute_minilm", "ladder_telemetry_minilm"):
        assert f"figures/{name}.png" in md and (pages[0] / "figures" / f"{name}.pdf").is_file()
    assert "no difference detectable with 5 seeds" in md or "excludes 0" in md
    assert "## Best configuration" not in md, "a ladder-only page has no method sections"
    files = sorted(p.relative_to(pages[0]) for p in pages[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(pages[1]) for p in pages[1].rglob("*") if p.is_file())
    for f in files:
        if f.suffix != ".png":  # PNG bytes may differ with the font cache; the numbers and PDFs may not
            assert (pages[0] / f).read_bytes() == (pages[1] / f).read_bytes(), f


def test_mixed_records_get_both_sections(records: Path, tmp_path: Path) -> None:
    assert main(["report", "--records", str(records), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Component ladder" in md and "## Best configuration per task and arm" in md
    best = pd.read_csv(tmp_path / "tables" / "best_configs.csv")
    assert set(best["arm"]) == {"vanilla", "mat"} and (best["n"] == 2).all(), "rung trials stay out of these"


def test_code_note_names_each_commit_and_version_with_its_trial_count(frame: pd.DataFrame, tmp_path: Path) -> None:
    recs = list(ladder_records(("rte",), seeds=(1, 2), rungs=("vanilla", "mat")))
    recs = [dataclasses.replace(r, git_sha=("a" if i < 3 else "b") * 40, versions={"torch": "2.13.0+cpu"} if i else {})
            for i, r in enumerate(recs)]
    write_records(recs, tmp_path / "r")
    df = load_records(tmp_path / "r")
    assert df["code.git_sha"].notna().all() and "code.torch" in df.columns
    assert ladder_report.code_note(df) == "Code (trials in brackets, of 4): commit aaaaaaa (3), bbbbbbb (1); torch 2.13.0+cpu (3), unrecorded (1)."
    n = frame[["experiment", "trial"]].drop_duplicates().shape[0]
    assert ladder_report.code_note(frame) == f"Code: the {n} trials' records name no commit or package versions."
    assert main(["report", "--records", str(tmp_path / "r"), "--out", str(tmp_path / "page")]) == 0
    assert "commit aaaaaaa (3), bbbbbbb (1)" in (tmp_path / "page" / "report.md").read_text()


def test_the_report_flags_records_that_ran_from_uncommitted_code(tmp_path: Path) -> None:
    recs = list(ladder_records(("rte",), seeds=(1, 2), rungs=("vanilla", "mat")))
    states = [(True, "d" * 64), (False, None), (None, None), (True, "e" * 64)]
    recs = [dataclasses.replace(r, git_sha="a" * 40, git_dirty=dirty, git_diff_sha=diff)
            for r, (dirty, diff) in zip(recs, states)]
    write_records(recs, tmp_path / "r")
    df = load_records(tmp_path / "r")
    assert ladder_report.code_note(df) == ("Code (trials in brackets, of 4): commit aaaaaaa (4); uncommitted changes "
                                           "no (1), unrecorded (1), yes (2).")
    assert main(["report", "--records", str(tmp_path / "r"), "--out", str(tmp_path / "page")]) == 0
    md = (tmp_path / "page" / "report.md").read_text()
    section = md.split("## Trials run from uncommitted code (2)")[1].split("\n## ")[0]
    assert "1 of the 4 records predate this check" in section
    assert section.count("commit aaaaaaa with uncommitted changes") == 2
    assert "diff sha256 dddddddddddd" in section and "diff sha256 eeeeeeeeeeee" in section


def test_kl_rows_weigh_intervals_by_their_steps() -> None:
    def trial(t: str, steps: list[int], own: list[float], drop: list[float]) -> list[dict[str, object]]:
        rows = []
        for s, o, d in zip(steps, own, drop):
            for metric, v in (("delta_own_kl", o), ("dropout_kl", d)):
                rows.append({"experiment": "e", "trial": t, "method": "mat", "task": "stsb", "status": "SUCCEEDED",
                             "kind": TELEMETRY, "step": s, "metric": metric, "value": v, "param.rung": "mat"})
        return rows
    df = pd.DataFrame(trial("a", [10, 40], [1.0, 2.0], [1.0, 1.0]) + trial("b", [10, 40], [3.0, 3.0], [1.0, 1.0])
                      + trial("c", [10, 40], [9.0, 9.0], [1.0, 1.0]))
    df.loc[df["trial"] == "c", "status"] = "FAILED"
    r = telemetry.kl_rows(df).iloc[0]
    # trial a: (10·1 + 30·2) / 40 = 1.75 over a dropout mean of 1; trial b: 3; the failed trial c is left out
    assert (r["task"], r["group"], r["n"]) == ("stsb", "mat", 2)
    assert r["delta_own_kl"] == pytest.approx((1.75 + 3.0) / 2) and r["dropout_kl"] == pytest.approx(1.0)
    assert r["ratio"] == pytest.approx(2.375) and r["ratio_std"] == pytest.approx(np.std([1.75, 3.0], ddof=1))
    assert r["min_interval_ratio"] == pytest.approx(1.0)


def test_kl_rows_of_the_ladder(frame: pd.DataFrame) -> None:
    rows = telemetry.kl_rows(frame)
    rte = rows[rows["task"] == "rte"].set_index("group")
    assert list(rte.index) == ["dropout_consistency", "mat", "mat_visible_delta"], "rungs with both statistics, in order"
    mean_inv = (1 + 1 / 2 + 1 / 3 + 1 / 4) / 4  # the synthetic statistics fall as 1/i over 4 equal intervals
    assert rte.loc["mat_visible_delta", "delta_own_kl"] == pytest.approx(4e-3 * mean_inv)
    assert rte.loc["mat_visible_delta", "dropout_kl"] == pytest.approx(1.6e-4 * mean_inv)
    assert rte.loc["mat_visible_delta", ["ratio", "min_interval_ratio"]].tolist() == pytest.approx([25.0, 25.0])
    assert rte.loc["mat", "ratio"] == pytest.approx(5e-11 / 1.6e-4) and rte.loc["dropout_consistency", "ratio"] == 0
    assert (rte["n"] == 5).all()
    table = telemetry.kl_table(rows[rows["task"] == "rte"], "t", "ladder_kl_minilm")
    assert table.cells.loc["mat_visible_delta"].tolist()[1:] == ["0.0021", "8.3e-05", "25 ± 0 (5)", "25"]


def test_the_committed_results_page_regenerates_from_the_committed_records(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/results.md and its tables are what the report makes of results/components/ today (run as the page
    says, from the repo root): records added without regenerating the page, or a report change that moves a
    number, fail here. Figures are left out (PNG/PDF bytes depend on the fonts of the machine)."""
    from tests.helpers import REPO

    records = REPO / "results" / "components"
    if not any(records.glob("*/*/trial.json")):
        pytest.skip("no component-study records committed yet")
    monkeypatch.chdir(REPO)
    assert main(["report", "--records", "results/components", "--out", str(tmp_path), "--page", "results.md",
                 "--title", "Which part of MAT acts: the component study",
                 "--preface", "results/components/README.md"]) == 0
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.suffix in (".md", ".csv", ".tex"))
    committed = sorted(p.relative_to(REPO / "docs") for p in (REPO / "docs" / "tables").glob("*")
                       if not p.name.startswith("benchmark_"))  # the benchmark page's tables share the folder
    assert [p for p in made if p.parts[0] == "tables"] == committed, "regenerate the page: tables differ"
    here = f"]({Path(os.path.relpath(REPO / 'docs', tmp_path)).as_posix()}/"  # the preface's links, rebased to tmp_path
    for rel in made:
        made_text = (tmp_path / rel).read_text().replace(here, "](")
        assert made_text == (REPO / "docs" / rel).read_text(), f"docs/{rel} is stale: regenerate it"


def test_every_number_the_study_preface_quotes_is_one_the_page_computes() -> None:
    """The hand-written findings in results/components/README.md (the page's preface) quote intervals, means and
    p-values; each must appear, character for character, in the computed part of docs/results.md, so a finding
    cannot drift from the records (a changed record moves the table, and this test names the stale quote)."""
    import re

    from tests.helpers import REPO

    from analysis.__main__ import rebase_links

    readme = REPO / "results" / "components" / "README.md"
    preface = rebase_links(readme.read_text(encoding="utf-8"), readme.parent, REPO / "docs")  # as the page carries it
    page = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    if "## What the study finds" not in preface:
        pytest.skip("the component study has no written findings yet")
    assert preface.strip() in page, "docs/results.md does not carry the current preface: regenerate it"
    computed = page.replace(preface.strip(), "", 1)
    number = r"[+-]?\d+(?:\.\d+)?(?:e[+-]?\d+)?"
    quotes = re.findall(rf"\[{number}, {number}\]|{number} ± {number} \(\d\)|p[=<]{number}", preface)
    assert len(quotes) >= 10, quotes
    stale = [q for q in quotes if q not in computed]
    assert stale == [], f"quoted in results/components/README.md but not in the computed page: {stale}"
