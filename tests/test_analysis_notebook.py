"""``notebooks/error_bars.ipynb`` runs headless: on the committed records by default, on a hand-written ladder
whose ``sampling`` rung beats ``mat`` (both rows, each with its own numbers), and on synthetic records when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_analysis_arms import ladder_layout

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "error_bars.ipynb"
ENV = ("MAT_RECORDS", "MAT_SYNTHETIC", "MAT_BASELINE", "MAT_SELECTION")


def run(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    """Execute the notebook with ``env`` set (the other variables unset); its text, Markdown, frames, images."""
    for key in ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    return {"text": "".join(o.get("text", "") for o in outputs),
            "markdown": [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})],
            "frames": "".join(o.get("data", {}).get("text/plain", "") for o in outputs),
            "images": sum("image/png" in o.get("data", {}) for o in outputs)}


def test_the_notebook_reads_the_committed_records_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    records = NOTEBOOK.parents[1] / "results" / "components"
    if not any(records.glob("*/*/trial.json")):
        pytest.skip("no component-study records committed")
    out = run(monkeypatch)
    n = len(list(records.glob("*/*/trial.json")))
    assert f"records: {records}" in out["text"] and f"'SUCCEEDED': {n}" in out["text"]
    assert "synthetic" not in out["text"]
    assert out["images"] == 1 and "dropout_consistency" in out["frames"]
    [table] = out["markdown"]
    assert "| sampling − vanilla |" in table and "| mat − vanilla |" in table


def test_a_ladder_layout_shows_each_rung_with_its_own_numbers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    records = ladder_layout(tmp_path / "results")
    out = run(monkeypatch, MAT_RECORDS=str(records))
    assert f"records: {records}" in out["text"] and "'SUCCEEDED': 9" in out["text"]
    [table] = out["markdown"]
    assert "| sampling | 35.00 ± 1.00 (3) |" in table and "| mat | 32.83 ± 0.76 (3) |" in table
    assert "| sampling − vanilla | +4.00 [+4.00, +4.00]" in table
    assert out["images"] == 1
    assert "minilm: the MAT paper published no GLUE rows" in out["text"]


def test_synthetic_records_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    out = run(monkeypatch, MAT_SYNTHETIC="1")
    assert "wrote 240 synthetic records (made-up numbers)" in out["text"] and "'SUCCEEDED': 240" in out["text"]
    compare, glue = out["markdown"]
    assert "| smart − vanilla |" in compare and "(Welch, unpaired)" not in compare  # paired by seed
    assert "| +MAT (paper) | 62.6 |" in glue and "| mat (ours) |" in glue
