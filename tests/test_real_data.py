"""Does it learn on real data? SST-2 from ``$MAT_DATA_DIR``, the packaged all-MiniLM-L6-v2, CPU, 500 steps.

Runs ``benchmarks/real_sst2.sh`` (vanilla, then MAT with K_δ = K_θ = 2, the same step budget) and reads the two
trial records. About 40 minutes on a 2-core CPU (vanilla ~6 min, MAT ~33 min): marked ``slow``, so only
``make test-all`` runs it. Measured numbers: docs/speed.md ("Real data: SST-2 in 500 steps").
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

from mat.modeling import MINILM_INSTALL, MINILM_PACKAGE
from tests.helpers import NO_SHARED_DATA, REPO, SHARED_DATA

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (SHARED_DATA / "glue" / "SST-2").is_dir(), reason=NO_SHARED_DATA),
    pytest.mark.skipif(importlib.util.find_spec(MINILM_PACKAGE) is None, reason=f"needs the packaged MiniLM: {MINILM_INSTALL}"),
]


def test_vanilla_and_mat_reach_85_on_sst2_dev(tmp_path: Path) -> None:
    env = {**os.environ, "MAT_DATA_DIR": str(SHARED_DATA), "OUT_DIR": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "real_sst2.sh"), "500"], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for method in ("vanilla", "mat"):
        record = json.loads((tmp_path / method / "trial.json").read_text())
        assert record["status"] == "SUCCEEDED" and record["train_steps"] == 500
        assert record["best"]["metrics"]["accuracy"] >= 85.0, (method, record["evals"])
