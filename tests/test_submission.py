"""GLUE test-server files: names, header, label strings where the server expects them, the zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from mat.spec.submission import GLUE_SUBMISSION_FILES, submission_name, write_prediction_file, zip_submission
from mat.spec.tasks import get_task


def test_file_names_per_task_and_split() -> None:
    assert submission_name(get_task("mnli"), "test_matched") == "MNLI-m.tsv"
    assert submission_name(get_task("mnli"), "test_mismatched") == "MNLI-mm.tsv"
    assert submission_name(get_task("sst2"), "test") == "SST-2.tsv"
    assert submission_name(get_task("stsb"), "test") == "STS-B.tsv"
    assert submission_name(get_task("mnli"), "diagnostic") == "AX.tsv"
    with pytest.raises(ValueError, match="no GLUE submission file"):
        submission_name(get_task("rte"), "validation")
    names = {submission_name(get_task(t), s) for t, s in [("cola", "test"), ("sst2", "test"), ("mrpc", "test"), ("stsb", "test"),
             ("qqp", "test"), ("mnli", "test_matched"), ("mnli", "test_mismatched"), ("qnli", "test"), ("rte", "test"),
             ("wnli", "test"), ("mnli", "diagnostic")]}
    assert names == set(GLUE_SUBMISSION_FILES)


def test_rows_header_and_label_strings(tmp_path: Path) -> None:
    rte = write_prediction_file(tmp_path / "RTE.tsv", get_task("rte"), [1, 0], [0, 1])
    assert rte.read_text() == "index\tprediction\n0\tnot_entailment\n1\tentailment\n"
    sst = write_prediction_file(tmp_path / "SST-2.tsv", get_task("sst2"), [0, 1], [1, 0])
    assert sst.read_text() == "index\tprediction\n0\t1\n1\t0\n"
    sts = write_prediction_file(tmp_path / "STS-B.tsv", get_task("stsb"), [0, 1, 2], [5.7, -0.2, 2.3456])
    assert sts.read_text() == "index\tprediction\n0\t5.000\n1\t0.000\n2\t2.346\n"
    mnli = write_prediction_file(tmp_path / "MNLI-m.tsv", get_task("mnli"), [0, 1, 2], [2, 1, 0])
    assert mnli.read_text().splitlines()[1:] == ["0\tcontradiction", "1\tneutral", "2\tentailment"]


def test_bad_predictions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a class id"):
        write_prediction_file(tmp_path / "RTE.tsv", get_task("rte"), [0], [2])
    with pytest.raises(ValueError, match="duplicate"):
        write_prediction_file(tmp_path / "RTE.tsv", get_task("rte"), [0, 0], [0, 1])
    with pytest.raises(ValueError, match="2 indices for 1"):
        write_prediction_file(tmp_path / "RTE.tsv", get_task("rte"), [0, 1], [0])
    assert not (tmp_path / "RTE.tsv").exists()


def test_zip_holds_the_files_flat(tmp_path: Path) -> None:
    write_prediction_file(tmp_path / "sub" / "RTE.tsv", get_task("rte"), [0], [0])
    write_prediction_file(tmp_path / "sub" / "CoLA.tsv", get_task("cola"), [0], [1])
    z = zip_submission(tmp_path / "sub", tmp_path / "submission.zip")
    assert sorted(zipfile.ZipFile(z).namelist()) == ["CoLA.tsv", "RTE.tsv"]
    with pytest.raises(FileNotFoundError, match="MNLI-m.tsv"):
        zip_submission(tmp_path / "sub", tmp_path / "all.zip", require_all=True)
