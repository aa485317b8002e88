"""GLUE test-server submission files (``CoLA.tsv`` ... ``AX.tsv``) and their zip. No torch.

Each file is ``index<TAB>prediction`` with a header line. The server expects label *strings* for the
NLI-style tasks (MNLI-m, MNLI-mm, QNLI, RTE and the diagnostic AX) and integers 0/1 for CoLA, SST-2,
MRPC, QQP and WNLI; STS-B takes a float score, which we clip to [0, 5].
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from mat.spec.tasks import GLUE_TASKS, TASKS, TaskSpec

AX_FILE = "AX.tsv"  # the diagnostic set's file: no task of its own
# Submission files the GLUE server wants, in its own naming: every GLUE task's, then AX.
GLUE_SUBMISSION_FILES: tuple[str, ...] = (
    *(f for t in GLUE_TASKS for f in TASKS[t].submission_files.values()), AX_FILE,
)


def format_predictions(task: TaskSpec, predictions: Sequence[float] | np.ndarray) -> list[str]:
    """Predictions (class ids, or STS-B scores) as the strings the server expects."""
    if task.is_regression:
        return [f"{min(5.0, max(0.0, float(p))):.3f}" for p in predictions]
    out = []
    for p in predictions:
        i = int(p)
        if not 0 <= i < task.num_labels:
            raise ValueError(f"{task.name}: prediction {p!r} is not a class id 0..{task.num_labels - 1}")
        out.append(task.label_names[i] if task.submission_labels else str(i))
    return out


def write_prediction_file(
    path: str | os.PathLike[str], task: TaskSpec, indices: Sequence[int],
    predictions: Sequence[float] | np.ndarray
) -> Path:
    """Write one ``index<TAB>prediction`` file (header included), sorted by index.

    Raises:
        ValueError: lengths differ, duplicate indices, or a prediction outside the label set.
    """
    if len(indices) != len(predictions):
        raise ValueError(f"{len(indices)} indices for {len(predictions)} predictions")
    if len(set(int(i) for i in indices)) != len(indices):
        raise ValueError("duplicate example indices: every test example must be predicted exactly once")
    labels = format_predictions(task, predictions)
    rows = sorted(zip((int(i) for i in indices), labels))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("index\tprediction\n" + "".join(f"{i}\t{label}\n" for i, label in rows), encoding="utf-8")
    os.replace(tmp, path)
    return path


def submission_name(task: TaskSpec, split: str) -> str:
    """The server's file name for ``task``'s test split (``MNLI-m.tsv`` ...); AX for the diagnostic set."""
    if split == "diagnostic":
        return AX_FILE
    if split not in task.submission_files:
        raise ValueError(f"{task.name} split {split!r} has no GLUE submission file (test splits: "
            f"{list(task.submission_files)})")
    return task.submission_files[split]


def zip_submission(folder: str | os.PathLike[str], out: str | os.PathLike[str],
    require_all: bool = False) -> Path:
    """Zip the submission files found in ``folder`` (flat, as the server wants) into ``out``.

    Raises:
        FileNotFoundError: no submission file in ``folder``, or (``require_all``) some are missing.
    """
    folder = Path(folder)
    present = [name for name in GLUE_SUBMISSION_FILES if (folder / name).is_file()]
    missing = [name for name in GLUE_SUBMISSION_FILES if name not in present]
    if not present or (require_all and missing):
        raise FileNotFoundError(f"{folder}: missing GLUE submission files {missing}")
    out = Path(out)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in present:
            zf.write(folder / name, arcname=name)
    return out

