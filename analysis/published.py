"""The MAT paper's published rows (Tables 1-5), shipped as data in ``analysis/reference/*.csv``.

Tables 1-3 are wide: one published row per line, columns ``row, method, model``, one column per
``<task>.<split>.<metric>`` (empty where the paper prints ``-``), ``published_score`` (Tables 1-2's Score
column as printed) and ``source`` (table, row and the work the row cites). Tables 4-5 (ablations) are
long: ``hyperparameter, setting, task, split, metric, value, source``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
GLUE_REFERENCES = {"bert-base": "table1_bert_base.csv", "roberta-large": "table2_roberta_large.csv"}
ANLI_REFERENCES = {"roberta-large": "table3_anli_roberta_large.csv"}
ABLATION_REFERENCES = {"K": "table4_ablation_k.csv", "lambda_s": "table5_ablation_lambda.csv"}
# The swept hyperparameter of each ablation table, as our records name it: the paper's K sets both sampling
# loops (sampling_times_delta = sampling_times_theta; NNI's alias sampling_times), λ is lambda_s.
ABLATION_PARAMS = {"K": ("sampling_times", "sampling_times_delta", "sampling_times_theta"),
    "lambda_s": ("lambda_s",)}
ABLATION_TABLES = {"K": "Table 4", "lambda_s": "Table 5"}
ID_COLUMNS = ("row", "method", "model", "published_score", "source")


def model_family(model: str) -> str | None:
    """``bert-base`` or ``roberta-large`` when ``model`` (a hub id or path) names one, else None."""
    name = str(model).lower().rstrip("/").rsplit("/", 1)[-1]
    for family in ("roberta-large", "bert-base"):
        if family in name:
            return family
    return None


def read_reference(name: str) -> pd.DataFrame:
    """A reference CSV as shipped (wide for Tables 1-3, long for 4-5)."""
    return pd.read_csv(REFERENCE_DIR / name)


def reference_long(wide: pd.DataFrame) -> pd.DataFrame:
    """Wide published rows -> long ``row, method, model, source, published_score, task, split, metric,
    value, published`` (cells the paper leaves as ``-`` are dropped; ``published`` is True, so tables score
    these rows on the metrics they print)."""
    ids = [c for c in ID_COLUMNS if c in wide.columns]
    long = wide.melt(id_vars=ids, var_name="column", value_name="value").dropna(subset=["value"])
    parts = long["column"].str.split(".", n=2, expand=True)
    long = long.assign(task=parts[0], split=parts[1], metric=parts[2]).drop(columns="column")
    if "published_score" not in long.columns:
        long["published_score"] = float("nan")
    long["published"] = True
    order = {r: i for i, r in enumerate(wide["row"])}
    return long.sort_values("row", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def glue_reference(model: str) -> pd.DataFrame | None:
    """Table 1 (BERT-base) or Table 2 (RoBERTa-large) rows in long form for ``model``'s family."""
    name = GLUE_REFERENCES.get(model_family(model) or "")
    return reference_long(read_reference(name)) if name else None


def anli_reference(model: str) -> pd.DataFrame | None:
    """Table 3 (ANLI, RoBERTa-large) rows in long form, when ``model`` is a RoBERTa-large."""
    name = ANLI_REFERENCES.get(model_family(model) or "")
    return reference_long(read_reference(name)) if name else None


def ablation_reference(factor: Sequence[str], method: str, model: str) -> tuple[str, pd.DataFrame] | None:
    """The paper's ablation (Table 4: K, Table 5: λ; MAT on BERT-base) for a sweep of ``factor``.

    Args:
        factor: the hyperparameters swept together (``["sampling_times_delta", "sampling_times_theta"]``).
        method, model: the sweep's method and model; only MAT on a BERT-base model has published rows.

    Returns:
        ``(hyperparameter, long rows)`` (``hyperparameter, setting, task, split, metric, value, source``),
        or None when the paper has no such ablation.
    """
    if method != "mat" or model_family(model) != "bert-base":
        return None
    for hp, names in ABLATION_PARAMS.items():
        if any(p in names for p in factor):
            return hp, read_reference(ABLATION_REFERENCES[hp])
    return None
