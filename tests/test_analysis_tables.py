"""Table layouts: the paper's published rows round-trip, its Score column is reproduced, renderers."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis import published, tables
from analysis.plots import ablation_info
from tests.paper_tables import TABLE1, TABLE2, TABLE3

PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "MAT-paper.txt"


def test_table1_and_table2_round_trip() -> None:
    t1 = tables.glue_table(published.glue_reference("bert-base-uncased"))
    t2 = tables.glue_table(published.glue_reference("roberta-large"))
    assert t1.cells.values.tolist() == TABLE1
    assert t2.cells.values.tolist() == TABLE2
    assert list(t1.cells.columns) == ["CoLA (Mcc)", "SST-2 (Acc)", "MRPC (Acc/F1)", "QQP (Acc/F1)", "STS-B (P/S)",
                                      "MNLI (Acc-m/Acc-mm)", "QNLI (Acc)", "RTE (Acc)", "Score"]
    assert all("MAT paper Table" in s for s in t1.numbers["source"])


def test_table3_round_trip() -> None:
    t3 = tables.anli_table(published.anli_reference("roberta-large"))
    assert t3.cells.values.tolist() == TABLE3
    assert list(t3.cells.columns) == ["Dev R1", "Dev R2", "Dev R3", "Test R1", "Test R2", "Test R3"]
    assert published.anli_reference("bert-base-uncased") is None


def test_score_column_recomputed_from_cells() -> None:
    ref = published.glue_reference("bert-base-uncased").drop(columns="published_score")
    scores = tables.glue_table(ref).cells["Score"].tolist()
    # Recomputed from the printed cells; SALT's exact mean 84.4875 is printed truncated as 84.48.
    assert scores == ["-", "81.48", "83.75", "84.49", "85.11"]
    ref2 = published.glue_reference("roberta-large").drop(columns="published_score")
    # RoBERTa-large MAT: exact mean 90.35625, printed 90.35; R3F lacks STS-B, so no score.
    assert tables.glue_table(ref2).cells["Score"].tolist() == ["88.93", "89.78", "90.09", "-", "90.36"]


@pytest.mark.skipif(not PAPER.is_file(), reason=f"paper text not found at {PAPER}")
def test_cells_equal_the_paper_text() -> None:
    lines = PAPER.read_text(encoding="utf-8").splitlines()

    def printed(first_label: str, n: int) -> list[list[str]]:
        start = next(i for i, ln in enumerate(lines) if ln.startswith(first_label + "\t"))
        return [ln.split("\t")[1:] for ln in lines[start:start + n]]

    assert printed("BERT ¹", 5) == TABLE1
    assert printed("RoBERTa ¹", 5) == TABLE2  # Table 2's row comes first in the text
    anli_start = next(i for i, ln in enumerate(lines) if ln.startswith("RoBERTa ¹\t73.8"))
    assert [ln.split("\t")[1:] for ln in lines[anli_start:anli_start + 3]] == TABLE3
    ablations = (("table4_ablation_k.csv", "K", "MAT- K"), ("table5_ablation_lambda.csv", "lambda_s", "MAT- λ"))
    for name, hp, first in ablations:
        t = tables.ablation_table(published.read_reference(name), hp)
        start = next(i for i, ln in enumerate(lines) if ln.startswith(first + "\t"))
        assert lines[start].split("\t")[1:] == list(t.cells.columns)
        body = [ln.split("\t") for ln in lines[start + 1:start + 5]]
        assert [[r[0]] + r[1:] for r in body] == [[i] + row for i, row in zip(t.cells.index, t.cells.values.tolist())]


def test_ablation_tables_round_trip() -> None:
    t4 = tables.ablation_table(published.read_reference("table4_ablation_k.csv"), "K")
    assert list(t4.cells.columns) == ["1", "5", "10", "20", "30", "50"]
    assert list(t4.cells.index) == ["CoLA (Mcc)", "SST-2 (Acc)", "MRPC (Acc)", "MRPC (F1)"]
    assert t4.cells.loc["MRPC (F1)"].tolist() == ["90.0", "90.9", "92.1", "91.1", "90.3", "90.2"]
    t5 = tables.ablation_table(published.read_reference("table5_ablation_lambda.csv"), "lambda_s")
    assert list(t5.cells.columns) == ["0.1", "1", "3", "5", "10", "50"]
    assert t5.cells.loc["CoLA (Mcc)"].tolist() == ["60.8", "60.1", "62.6", "61.9", "62.4", "57.8"]


def test_csv_round_trips_the_reference_values() -> None:
    wide = published.read_reference("table1_bert_base.csv").set_index("row")
    t = tables.glue_table(published.glue_reference("bert-base-uncased"))
    back = pd.read_csv(io.StringIO(tables.to_csv(t))).set_index("row")
    value_cols = [c for c in wide.columns if c.count(".") == 2]
    pd.testing.assert_frame_equal(back[value_cols], wide[value_cols], check_dtype=False)
    pd.testing.assert_series_equal(back["score"], wide["published_score"], check_names=False)


def ours(summary_rows: list[tuple]) -> pd.DataFrame:
    s = pd.DataFrame(summary_rows, columns=["model", "arm", "task", "split", "metric", "n", "mean", "std"])
    return tables.arm_rows(s)


def test_our_rows_next_to_published_and_conventions_named() -> None:
    rows = ours([("bert-base-uncased", "mat", t, "dev", m, 5, 80.0, 0.5)
                 for t, ms in {"cola": ["mcc"], "sst2": ["accuracy"], "mrpc": ["accuracy", "f1"],
                               "qqp": ["accuracy", "f1"], "stsb": ["pearson", "spearman"],
                               "mnli": ["accuracy_m", "accuracy_mm"], "qnli": ["accuracy"], "rte": ["accuracy"],
                               "wnli": ["accuracy"]}.items() for m in ms])
    both = pd.concat([published.glue_reference("bert-base-uncased"), rows], ignore_index=True)
    paper = tables.glue_table(both, "paper")
    assert paper.cells.loc["mat (ours)"].tolist() == ["80.0", "80.0", "80.0/80.0", "80.0/80.0", "80.0/80.0",
                                                      "80.0/80.0", "80.0", "80.0", "80.00"]
    assert paper.numbers.loc["mat (ours)", "n"] == 5
    assert "8 task scores" in tables.to_markdown(paper) and "no WNLI" in tables.to_latex(paper)
    glue = tables.glue_table(both, "glue")
    assert "WNLI (Acc)" in glue.cells.columns and "WNLI included" in tables.to_markdown(glue)
    assert glue.cells.loc["mat (ours)", "Score"] == "80.00"
    assert glue.cells.loc["+MAT (paper)", "Score"] == "-"  # the paper has no WNLI: no 9-task score


def test_markdown_and_latex_rendering() -> None:
    t = tables.glue_table(published.glue_reference("bert-base-uncased"), title="Table 1: GLUE, BERT-base")
    md = tables.to_markdown(t).splitlines()
    assert md[0] == "**Table 1: GLUE, BERT-base**"
    assert md[5] == ("| BERT (Jiang et al. 2020) | 54.7 | 92.9 | 84.1/89.0 | 90.9/88.3 | 89.2/88.8 | 84.5/84.4 "
                     "| 91.1 | 63.5 | 81.48 |")
    tex = tables.to_latex(t)
    assert r"\begin{tabular}{lrrrrrrrrr}" in tex
    assert r"+SMART & 59.1 & 93.0 & 87.7/91.3 & 91.5/88.5 & 90.0/89.4 & 85.6/86.0 & 91.7 & 71.2 & 83.75 \\" in tex
    assert tables.latex_escape("a_b & 5% ± λ") == r"a\_b \& 5\% $\pm$ $\lambda$"


def test_anli_and_advglue_from_split_names() -> None:
    rows = ours([("roberta-large", "mat", "anli_r1", "dev", "accuracy", 3, 75.0, 0.2),
                 ("roberta-large", "mat", "anli_r1", "test_r1", "accuracy", 3, 74.04, 0.2),
                 ("roberta-large", "mat", "anli_r3", "test_r3", "accuracy", 3, 50.05, 0.2)])
    t = tables.anli_table(rows)
    assert t.cells.loc["mat (ours)"].tolist() == ["75.0", "-", "-", "74.0", "-", "50.1"]
    adv = ours([("m", "mat", "sst2", "adv_validation", "accuracy", 2, 40.0, 1.0),
                ("m", "mat", "qqp", "adv_validation", "accuracy", 2, 45.0, 1.0),
                ("m", "mat", "qqp", "adv_validation", "f1", 2, 41.0, 1.0),
                ("m", "mat", "mnli", "adv_validation_matched", "accuracy", 2, 30.0, 1.0),
                ("m", "mat", "mnli", "adv_validation_mismatched", "accuracy", 2, 31.0, 1.0)])
    a = tables.advglue_table(adv)
    assert list(a.cells.columns) == ["SST-2", "QQP", "MNLI-m", "MNLI-mm"]
    assert a.cells.loc["mat (ours)"].tolist() == ["40.0", "45.0/41.0", "30.0", "31.0"]
    assert list(a.numbers.columns[:3]) == ["sst2.adv_validation.accuracy", "qqp.adv_validation.accuracy",
                                           "qqp.adv_validation.f1"]


def test_ablation_cells_show_mean_and_std_over_seeds() -> None:
    per_seed = pd.DataFrame({
        "task": ["cola"] * 4 + ["mrpc"] * 2, "metric": ["mcc"] * 4 + ["f1"] * 2, "split": "dev",
        "param.lambda_s": [1.0, 1.0, 3.0, 3.0, 1.0, 1.0], "value": [61.0, 63.0, 62.5, 62.5, 90.0, 92.0],
    })
    info = ablation_info(per_seed, "lambda_s")
    t = tables.ablation_table(info, "lambda_s")
    # cola at 1: mean 62, std sqrt(2) = 1.41; at 3: std 0; mrpc f1 at 3: no trials
    assert t.cells.loc["CoLA (Mcc)"].tolist() == ["62.0 ± 1.4", "62.5 ± 0.0"]
    assert t.cells.loc["MRPC (F1)"].tolist() == ["91.0 ± 1.4", "-"]
    assert math.isnan(t.numbers.loc["MRPC (F1)", "3"])


def test_write_table_files(tmp_path: Path) -> None:
    t = tables.anli_table(published.anli_reference("roberta-large"), name="anli_ref")
    paths = tables.write_table(t, tmp_path)
    assert sorted(p.name for p in paths.values()) == ["anli_ref.csv", "anli_ref.md", "anli_ref.tex"]
    assert paths["md"].read_text() == tables.to_markdown(t)


def test_p_values_in_tables_and_in_prose() -> None:
    assert [tables.fmt_p(p) for p in (0.0443, 0.5, 0.0004, float("nan"))] == ["0.044", "0.5", "<0.001", "-"]
    # prose reads "p<0.001", never "p=<0.001"
    assert [tables.p_clause(p) for p in (0.0443, 0.0004, float("nan"))] == ["p=0.044", "p<0.001", "p=-"]
