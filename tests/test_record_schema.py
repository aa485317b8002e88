"""docs/design.md's record schema ("The trial record") is checked against the dataclasses that write it."""

from __future__ import annotations

import re

import torch

from mat.precision import Precision, measure_rounding
from mat.provenance import STACK
from mat.spec.config import RESULT_RUN_KEYS
from mat.spec.cost import CostMeter
from mat.spec.records import EvalResult, TrialRecord
from tests.helpers import REPO
from tests.test_methods import make_batch, tiny_model


def _block() -> str:
    text = (REPO / "docs" / "design.md").read_text()
    section = text[text.index("## The trial record"):]
    return section.split("```")[1]


def _split(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "{["
        depth -= ch in "}]"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return items + [cur]


def _keys(text: str) -> dict[str, str]:
    """``{key: value text}`` of a comma-separated schema (prose in parentheses dropped), in order."""
    while "(" in text:
        text = re.sub(r"\([^()]*\)", "", text)
    out = {}
    for item in _split(text):
        m = re.match(r"\s*([a-z_0-9]+)\s*(?::\s*(.*))?$", item, flags=re.S)
        if m:
            out[m.group(1)] = (m.group(2) or "").strip()
    return out


def _inner(value: str, opening: str = "{") -> str:
    """The text inside the first ``opening`` bracket of ``value``."""
    closing = {"{": "}", "[": "]"}[opening]
    start, depth = value.index(opening), 0
    for i in range(start, len(value)):
        depth += value[i] == opening
        depth -= value[i] == closing
        if depth == 0:
            return value[start + 1 : i]
    raise AssertionError(f"unbalanced {opening} in {value!r}")


def test_top_level_keys_are_the_records_in_order() -> None:
    record = TrialRecord("t", "mat", "rte", "m", 1, {}, dev_labels={"validation": "0,1"})  # labels: when kept
    assert list(_keys(_block())) == list(record.to_dict())


def test_nested_blocks_match_the_code() -> None:
    doc = _keys(_block())
    assert list(_keys(_inner(doc["run"]))) == list(RESULT_RUN_KEYS)
    ev = EvalResult(1, 0.5, {"accuracy": 1.0}, 1.0, {}, {"loss": 0.1}, predictions={"validation": "0,1"})
    record = TrialRecord("t", "mat", "rte", "m", 1, {}, evals=[ev], best=ev, final=ev)
    written = record.to_dict()
    assert list(_keys(_inner(_inner(doc["evals"], "[")))) == list(written["evals"][0])
    assert list(_keys(_inner(doc["best"]))) == list(written["best"]) == list(_keys(_inner(doc["final"])))
    assert set(_keys(_inner(doc["versions"]))) == {"python", "mat", *STACK}
    cost = CostMeter().to_dict(3, {"forward": 3.0, "backward": 3.0}, updates=6,
                               diagnostic={"forward": 3.0, "backward": 0.0})
    documented = _keys(_inner(doc["cost"]))
    assert list(documented) == list(cost)
    phases = list(_keys(_inner(documented["wall_seconds"])))
    assert set(cost["wall_seconds"]) <= set(phases) and phases[-1] == "total"
    assert list(_keys(_inner(documented["cpu_seconds"]))) == list(cost["cpu_seconds"])
    assert list(_keys(_inner(documented["passes"]))) == list(cost["passes"])


def test_precision_keys_match_the_code() -> None:
    precision = _inner(_keys(_block())["precision"])
    plain = Precision("fp32", None, "auto", "why").record()
    assert list(_keys(precision))[: len(plain)] == list(plain)
    measured = measure_rounding(tiny_model(), make_batch(), torch.bfloat16, 1e-3)
    assert list(_keys(_inner(precision, "["))) == list(measured)
