"""``notebooks/error_bars.ipynb`` runs headless on synthetic records and draws its figure and table."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "error_bars.ipynb"


def test_error_bars_notebook_executes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAT_RECORDS", raising=False)  # use the bundled synthetic record generator
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "wrote 240 synthetic records" in text and "'SUCCEEDED': 240" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the box plot
    frames = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "paired t-test" in frames and "Welch" not in frames  # methods compared with vanilla paired by seed
    tables = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert len(tables) == 1
    assert "| +MAT (paper) | 62.6 |" in tables[0] and "| mat (ours) |" in tables[0]
