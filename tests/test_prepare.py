"""``python -m mat.data prepare``: the local data folder written from Hub-shaped datasets reads back as the same
examples; without the Hub, trials and prepare fail within one probe, in one line that says what to do.

The Hub itself is unreachable here: the writers are checked on ``datasets.Dataset`` objects built in code with
the Hub's columns, and on the real files of ``$MAT_DATA_DIR`` read, written again and read back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mat import layout
from mat.combined_nli import NLI_SOURCES, load_combined_nli
from mat.data import DataError, _features, load_local, require_split
from mat.spec.tasks import TASKS, TaskSpec, get_task
from tests.helpers import NO_SHARED_DATA, REPO, SHARED_DATA, TRIAL_SCRIPT, make_tiny_model_dir
from tests.nni_support import free_port

TEXTS = ['He said "no" -- twice.', "it's a \"quoted\" word", "Ünïcödé, commas, and; semicolons", "#1 String-like 'text'"]


def hub_like(task: TaskSpec, split: str, n: int = 4) -> Any:
    """A split as the Hub has it: the task's text fields, ``label`` (ids; -1 on GLUE test), ``idx`` (not 0..n-1)."""
    import datasets

    unlabelled = split.startswith("test") and not task.labelled_test
    cols: dict[str, list[Any]] = {f: [f"{TEXTS[i % len(TEXTS)]} {f} {split} {i}" for i in range(n)] for f in task.text_fields}
    if task.is_regression:
        cols["label"] = [-1.0 if unlabelled else [0.0, 2.5, 3.8, 5.0][i % 4] for i in range(n)]
    else:
        cols["label"] = [-1 if unlabelled else i % task.num_labels for i in range(n)]
    cols["idx"] = [100 + 3 * i for i in range(n)]
    return datasets.Dataset.from_dict(cols, features=_features(task))


def hub_like_task(task: TaskSpec) -> dict[str, Any]:
    return {s: hub_like(task, s) for s in (task.train_split, *task.eval_splits, *task.test_splits)}


def assert_same_examples(task: TaskSpec, split: str, written: Any, read: Any) -> None:
    spec = task.local_files[split][0]
    assert len(read) == len(written), split
    for f in task.text_fields:
        assert read[f] == written[f], (split, f)
    assert read["label"] == pytest.approx(written["label"]) if task.is_regression else read["label"] == written["label"]
    expected_idx = written["idx"] if spec.index_column else list(range(len(written)))  # no index column: row order
    assert read["idx"] == expected_idx, split


@pytest.mark.parametrize("name", sorted(TASKS))
def test_a_written_task_reads_back_as_the_datasets_it_was_written_from(name: str, tmp_path: Path) -> None:
    task = TASKS[name]
    splits = hub_like_task(task)
    files = layout.write_task(task, splits, tmp_path)
    assert {str(p.relative_to(tmp_path)) for p in files} == {task.local_files[s][0].path for s in splits}
    back = load_local(task, tmp_path)
    assert set(back) == set(splits)
    for split, ds in splits.items():
        assert_same_examples(task, split, ds, back[split])


def test_the_glue_layout_is_the_classic_one(tmp_path: Path) -> None:
    layout.write_task(TASKS["cola"], hub_like_task(TASKS["cola"]), tmp_path)
    layout.write_task(TASKS["qqp"], hub_like_task(TASKS["qqp"]), tmp_path)
    cola = (tmp_path / "glue" / "CoLA" / "train.tsv").read_text().splitlines()
    assert cola[1] == '\t1\t\tit\'s a "quoted" word sentence train 1', "CoLA train: no header, label in column 2, text in 4"
    qqp = (tmp_path / "glue" / "QQP" / "dev.tsv").read_text().splitlines()
    assert qqp[0] == "id\tquestion1\tquestion2\tis_duplicate" and qqp[1].startswith("100\t")
    assert (tmp_path / "glue" / "QQP" / "test.tsv").read_text().splitlines()[0] == "id\tquestion1\tquestion2"


def test_a_tab_inside_a_field_is_refused_not_written(tmp_path: Path) -> None:
    import datasets

    task = TASKS["sst2"]
    ds = datasets.Dataset.from_dict({"sentence": ["fine", "a\ttab"], "label": [0, 1], "idx": [0, 1]}, features=_features(task))
    with pytest.raises(DataError, match=r"glue/SST-2/train.tsv:3: a tab or line break inside a field"):
        layout.write_task(task, {"train": ds}, tmp_path)
    assert not (tmp_path / "glue" / "SST-2" / "train.tsv").exists()


def test_advglue_tasks_share_one_file_and_read_back(tmp_path: Path) -> None:
    sst2, mnli = TASKS["sst2"], TASKS["mnli"]
    adv = {("sst2", "adv_validation"): hub_like(sst2, "adv_validation", 3)}
    layout.write_advglue(adv, tmp_path)
    layout.write_advglue({("mnli", "adv_validation_mismatched"): hub_like(mnli, "adv_validation_mismatched", 2)}, tmp_path)
    assert sorted(json.loads((tmp_path / "advglue" / "dev.json").read_text())) == ["mnli-mm", "sst2"], "earlier keys kept"
    layout.write_task(sst2, hub_like_task(sst2), tmp_path)
    back = load_local(sst2, tmp_path)
    assert_same_examples(sst2, "adv_validation", adv[("sst2", "adv_validation")], require_split(back, sst2, "adv_validation", tmp_path))


def test_combined_nli_sources_read_back_with_their_labels_mapped(tmp_path: Path) -> None:
    import datasets

    fever = next(s for s in NLI_SOURCES if s.name == "fever_nli")
    snli = next(s for s in NLI_SOURCES if s.name == "snli")
    layout.write_nli_source(fever, datasets.Dataset.from_dict(
        {"premise": ["p1", "p2"], "hypothesis": ["h1", "h2"], "label": ["SUPPORTS", "REFUTES"]}), tmp_path)
    layout.write_nli_source(snli, datasets.Dataset.from_dict(
        {"premise": ["p3", "p4"], "hypothesis": ["h3", "h4"], "label": [1, -1]}), tmp_path)
    mix = load_combined_nli(tmp_path, sources=(fever, snli))
    assert mix["premise"] == ["p1", "p2", "p3"] and mix["label"] == [0, 2, 1] and mix["source"] == ["fever_nli"] * 2 + ["snli"]


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=NO_SHARED_DATA)
@pytest.mark.parametrize("name", ["cola", "mrpc", "rte", "stsb", "anli_r1"])
def test_real_files_written_again_read_back_identically(name: str, tmp_path: Path) -> None:
    task = get_task(name)
    real = load_local(task, SHARED_DATA)
    layout.write_task(task, dict(real), tmp_path)
    adv = {(name, s): real[s] for s in real if task.local_files[s][0].fmt == "advglue"}
    if adv:
        layout.write_advglue(adv, tmp_path)
    again = load_local(task, tmp_path)
    assert set(again) == set(real)
    for split in real:
        spec = task.local_files[split][0]
        for col in real[split].column_names:
            if col != "idx" or spec.index_column:
                assert again[split][col] == real[split][col], (split, col)


def test_prepare_command_writes_a_folder_a_trial_can_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(layout, "load_hub", hub_like_task)  # the Hub's loader, replaced by datasets built in code
    monkeypatch.setattr(layout, "hub_unreachable", lambda: None)
    assert layout.main(["prepare", "--out", str(tmp_path / "data"), "--tasks", "rte,cola", "mrpc"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("rte: train 4, validation 4, test 4 rows -> ") and len(out) == 4
    assert out[-1] == f"wrote 9 files under {tmp_path / 'data'}; train from it with MAT_DATA_DIR={tmp_path / 'data'} or --data_dir {tmp_path / 'data'}"
    for name in ("rte", "cola", "mrpc"):
        assert set(load_local(get_task(name), tmp_path / "data")) == {"train", "validation", "test"}


def _closed_port_env() -> dict[str, str]:
    """The Hub at a local port nothing listens on: unreachable, without touching the network."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAT_DATA_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "NNI_PLATFORM")}
    return {**env, "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_prepare_without_the_hub_says_so_in_one_line_and_writes_nothing(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "mat.data", "prepare", "--out", str(tmp_path / "d"), "--tasks", "rte"],
                          capture_output=True, text=True, env=_closed_port_env(), cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: the Hugging Face Hub is unreachable (ConnectError")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("offline", [False, True], ids=["no-network", "HF_HUB_OFFLINE"])
def test_a_trial_without_data_and_hub_fails_in_one_line_naming_the_fix(tmp_path: Path, offline: bool) -> None:
    model = make_tiny_model_dir(tmp_path / "model")
    env = {**_closed_port_env(), **({"HF_HUB_OFFLINE": "1"} if offline else {})}
    proc = subprocess.run([sys.executable, str(TRIAL_SCRIPT), "--task", "sst2", "--model", str(model), "--method", "vanilla",
                           "--output_dir", str(tmp_path / "out"), "--device", "cpu"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, proc.stderr
    for words in ("no local data folder (neither --data_dir nor $MAT_DATA_DIR is set)", "the Hugging Face Hub is unreachable",
                  "Set MAT_DATA_DIR or --data_dir", "`python -m mat.data prepare --out DIR [--tasks ...]`"):
        assert words in errors[0]
    assert "Traceback" not in proc.stderr and "Retrying" not in proc.stderr, "no traceback, none of the libraries' retries"
    record = json.loads((tmp_path / "out" / "trial.json").read_text())
    assert record["status"] == "FAILED" and "Set MAT_DATA_DIR or --data_dir" in record["error"]


LOG_PROBE = """
import logging, sys
sys.path.insert(0, {repo!r})
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
import datasets, huggingface_hub, transformers
from trials.mat_trial import library_logs_once
if {fix}:
    library_logs_once()
transformers.utils.logging.get_logger("transformers.probe").warning("probe-t")
datasets.utils.logging.get_logger("datasets.probe").warning("probe-d")
huggingface_hub.utils.logging.get_logger("huggingface_hub.probe").warning("probe-h")
"""


def test_library_log_lines_are_printed_once_in_the_trials_format() -> None:
    def stderr(fix: bool) -> str:
        code = LOG_PROBE.format(repo=str(REPO), fix=fix)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stderr

    before = stderr(False)
    assert before.count("probe-d") == 2 and before.count("probe-h") == 2, "the libraries' own handler plus the root's"
    after = stderr(True).splitlines()
    for lib, word in (("transformers", "probe-t"), ("datasets", "probe-d"), ("huggingface_hub", "probe-h")):
        assert [line for line in after if word in line] == [f"WARNING {lib}.probe: {word}"]
