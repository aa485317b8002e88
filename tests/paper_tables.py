"""The MAT paper's Tables 1-3 as printed, cell by cell: one transcription for every test that needs it.

``tests/test_analysis_tables.py`` checks these rows against the paper text itself; the score tests derive
their per-task metrics from them with :func:`glue_row_metrics`.
"""

from __future__ import annotations

# Columns of Tables 1 and 2: CoLA (Mcc), SST-2 (Acc), MRPC (Acc/F1), QQP (Acc/F1), STS-B (P/S),
# MNLI (Acc-m/Acc-mm), QNLI (Acc), RTE (Acc), Score. Table 1: BERT-base (Devlin, Jiang et al., +SMART,
# +SALT, +MAT); Table 2: RoBERTa-large (RoBERTa, +FreeLB, +SMART, +R3F, +MAT).
TABLE1 = [
    ["-", "92.7", "86.7/-", "-", "-", "84.4/-", "88.4", "-", "-"],
    ["54.7", "92.9", "84.1/89.0", "90.9/88.3", "89.2/88.8", "84.5/84.4", "91.1", "63.5", "81.48"],
    ["59.1", "93.0", "87.7/91.3", "91.5/88.5", "90.0/89.4", "85.6/86.0", "91.7", "71.2", "83.75"],
    ["61.0", "93.6", "88.4/91.8", "91.7/88.6", "90.4/90.0", "86.1/85.8", "92.0", "72.9", "84.48"],
    ["62.6", "93.8", "89.0/92.1", "91.8/89.0", "90.5/90.2", "86.2/86.0", "92.4", "74.7", "85.11"],
]
TABLE2 = [
    ["68.0", "96.4", "90.9/-", "92.2/-", "92.4/-", "90.2/-", "94.7", "86.6", "88.93"],
    ["71.1", "96.7", "91.4/-", "92.6/-", "92.7/-", "90.6/-", "95.0", "88.1", "89.78"],
    ["70.6", "96.9", "89.2/92.1", "92.4/89.8", "92.8/92.6", "91.1/91.3", "95.6", "92.0", "90.09"],
    ["71.2", "97.0", "91.6/-", "92.4/89.8", "-", "91.1/91.3", "95.3", "88.5", "-"],
    ["71.3", "97.1", "91.7/93.9", "92.5/90.0", "92.9/92.6", "91.3/91.4", "95.7", "90.6", "90.35"],
]
# Table 3: ANLI with RoBERTa-large (RoBERTa, +SMART, +MAT), Dev R1-R3 then Test R1-R3.
TABLE3 = [
    ["73.8", "48.9", "44.4", "-", "-", "-"],
    ["74.5", "50.9", "47.6", "72.4", "49.8", "50.3"],
    ["74.8", "51.0", "49.3", "74.7", "51.1", "50.5"],
]

GLUE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cola", ("mcc",)), ("sst2", ("accuracy",)), ("mrpc", ("accuracy", "f1")), ("qqp", ("accuracy", "f1")),
    ("stsb", ("pearson", "spearman")), ("mnli", ("accuracy_m", "accuracy_mm")), ("qnli", ("accuracy",)),
    ("rte", ("accuracy",)),
)


def glue_row_metrics(row: list[str]) -> tuple[dict[str, dict[str, float]], float | None]:
    """``({task: {metric: value}}, printed Score)`` of a Table 1/2 row; "-" cells and halves are left out."""
    metrics: dict[str, dict[str, float]] = {}
    for cell, (task, names) in zip(row, GLUE_COLUMNS):
        values = {n: float(v) for n, v in zip(names, cell.split("/")) if v != "-"}
        if values:
            metrics[task] = values
    return metrics, (None if row[-1] == "-" else float(row[-1]))
