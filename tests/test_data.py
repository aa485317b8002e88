"""Raw data: every real file in $MAT_DATA_DIR loads with its official row count and Hub label ids;
bad input fails loudly, naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mat.data
from mat.batching import make_loader, tokenize
from mat.combined_nli import load_combined_nli
from mat.data import DataError, load_raw, require_split
from mat.spec.tasks import get_task
from tests.helpers import NO_SHARED_DATA, SHARED_DATA, make_tiny_glue_dir, make_tiny_model_dir

needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=NO_SHARED_DATA)

# Official row counts (each file of the data folder has its official count).
OFFICIAL = {
    "cola": {"train": 8551, "validation": 1043, "test": 1063},
    "sst2": {"train": 67349, "validation": 872, "test": 1821, "adv_validation": 148},
    "mrpc": {"train": 3668, "validation": 408, "test": 1725},
    "stsb": {"train": 5749, "validation": 1500, "test": 1379},
    "rte": {"train": 2490, "validation": 277, "test": 3000, "adv_validation": 81},
    "wnli": {"train": 635, "validation": 71, "test": 146},
    "qnli": {"validation": 5463, "test": 5463, "adv_validation": 148},
    "mnli": {"validation_matched": 9815, "adv_validation_matched": 121, "adv_validation_mismatched": 162},
    "qqp": {"adv_validation": 78},
    "anli_r1": {"dev_r1": 1000, "test_r1": 1000},
    "anli_r2": {"dev_r2": 1000, "test_r2": 1000},
    "anli_r3": {"dev_r3": 1200, "test_r3": 1200},
}


@needs_data
@pytest.mark.parametrize("task", sorted(OFFICIAL))
def test_every_shared_file_loads_with_its_official_row_count(task: str) -> None:
    ds = load_raw(get_task(task), SHARED_DATA)
    assert {k: len(v) for k, v in ds.items()} == OFFICIAL[task]
    spec = get_task(task)
    for split, d in ds.items():
        assert set(d.column_names) == {*spec.text_fields, "label", "idx"}
        labels = d["label"]
        if split in spec.test_splits and not spec.labelled_test:
            assert set(labels) == {-1}, f"{task}/{split}: unlabelled test split must have label -1"
        elif spec.is_regression:
            assert 0.0 <= min(labels) and max(labels) <= 5.0
        else:
            assert set(labels) == set(range(spec.num_labels)), f"{task}/{split}: label ids {set(labels)}"


@needs_data
def test_label_ids_equal_the_hub_datasets() -> None:
    rte = load_raw(get_task("rte"), SHARED_DATA)["train"]
    first = rte[0]  # idx 0 of RTE train is 'not_entailment' (1) on the Hub
    assert first["idx"] == 0 and first["label"] == 1 and first["sentence1"].startswith("No Weapons of Mass Destruction")
    anli = load_raw(get_task("anli_r1"), SHARED_DATA)["dev_r1"]
    raw_first = json.loads((SHARED_DATA / "anli/R1/dev.jsonl").open().readline())
    assert anli[0]["label"] == "enc".index(raw_first["label"])
    assert anli[0]["premise"] == raw_first["context"]
    mnli = load_raw(get_task("mnli"), SHARED_DATA)["validation_matched"]
    counts = [mnli["label"].count(i) for i in range(3)]
    assert counts == [3479, 3123, 3213]  # entailment / neutral / contradiction, README
    cola = load_raw(get_task("cola"), SHARED_DATA)["train"]
    assert cola.features["label"].names == ["unacceptable", "acceptable"]


@needs_data
def test_quoting_is_off_so_rows_are_not_merged() -> None:
    # Default CSV quoting reads MRPC train as 3570 rows and STS-B test as 1119 (README).
    assert len(load_raw(get_task("mrpc"), SHARED_DATA)["train"]) == 3668
    assert len(load_raw(get_task("stsb"), SHARED_DATA)["test"]) == 1379
    qnli = load_raw(get_task("qnli"), SHARED_DATA)["validation"]
    assert sum(s.startswith('"') for s in qnli["sentence"]) + sum(q.startswith('"') for q in qnli["question"]) >= 19


@needs_data
def test_missing_split_is_a_clear_error_naming_the_file() -> None:
    raw = load_raw(get_task("mnli"), SHARED_DATA)
    with pytest.raises(DataError, match=r"glue/MNLI/dev_mismatched\.tsv"):
        require_split(raw, get_task("mnli"), "validation_mismatched", SHARED_DATA)
    with pytest.raises(DataError, match=r"glue/MNLI/train\.tsv"):
        require_split(raw, get_task("mnli"), "train", SHARED_DATA)
    with pytest.raises(DataError, match="has no split 'dev'"):
        require_split(raw, get_task("mnli"), "dev", SHARED_DATA)


def _glue(tmp_path: Path, task_dir: str, name: str, text: str) -> Path:
    d = tmp_path / "glue" / task_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return tmp_path


def test_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    root = _glue(tmp_path, "RTE", "train.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n")
    with pytest.raises(DataError, match=r"RTE/train\.tsv:3: expected 4 tab-separated fields, got 3"):
        load_raw(get_task("rte"), root)


def test_label_outside_the_label_set_names_file_and_line(tmp_path: Path) -> None:
    root = _glue(tmp_path, "RTE", "dev.tsv", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tneutral\n")
    with pytest.raises(DataError, match=r"RTE/dev\.tsv:line 2: label 'neutral' is not one of rte's labels"):
        load_raw(get_task("rte"), root)
    root = _glue(tmp_path, "STS-B", "dev.tsv", "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n0\tg\tf\ty\to\ts\ts\ta\tb\tfive\n")
    with pytest.raises(DataError, match="not a number"):
        load_raw(get_task("stsb"), root)


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    d = tmp_path / "anli" / "R1"
    d.mkdir(parents=True)
    (d / "dev.jsonl").write_text('{"context": "a", "hypothesis": "b", "label": "e"}\n{"context": "a", \n')
    with pytest.raises(DataError, match=r"R1/dev\.jsonl:2: not valid JSON"):
        load_raw(get_task("anli_r1"), tmp_path)
    (d / "dev.jsonl").write_text('{"context": "a", "hypothesis": "b", "label": "x"}\n')
    with pytest.raises(DataError, match=r"dev\.jsonl:line 1: label 'x'"):
        load_raw(get_task("anli_r1"), tmp_path)


def test_missing_data_dir_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_raw(get_task("rte"), tmp_path / "nope")
    monkeypatch.setenv("MAT_DATA_DIR", str(tmp_path / "nope2"))
    with pytest.raises(DataError, match=r"nope2.*MAT_DATA_DIR"):
        load_raw(get_task("rte"))
    with pytest.raises(DataError, match=r"no data files for task 'rte'.*glue/RTE/train\.tsv"):
        load_raw(get_task("rte"), tmp_path)
    with pytest.raises(KeyError, match="unknown task"):
        load_raw(get_task("rtee"), tmp_path)


def test_hub_path_asks_for_the_hub_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []

    def fake(path: str, name: str | None = None, **kw: object) -> datasets.DatasetDict:
        calls.append((path, name))
        d = datasets.Dataset.from_dict({"premise": ["p"], "hypothesis": ["h"], "label": [0], "uid": ["u"], "reason": [""]})
        return datasets.DatasetDict({s: d for s in ("train_r1", "dev_r1", "test_r1", "train_r2", "dev_r2")})

    monkeypatch.delenv("MAT_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    monkeypatch.setattr(mat.data, "hub_unreachable", lambda: None)  # the Hub answers the probe
    ds = load_raw(get_task("anli_r1"))
    assert calls == [("facebook/anli", None)]
    assert sorted(ds) == ["dev_r1", "test_r1", "train_r1"] and ds["dev_r1"].column_names == ["premise", "hypothesis", "label"]
    load_raw(get_task("sst2"))
    assert calls[-1] == ("nyu-mll/glue", "sst2")


def test_an_unreachable_hub_is_one_probe_and_no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls = []
    monkeypatch.delenv("MAT_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False, raising=False)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(mat.data, "hub_unreachable", lambda: "ConnectError: [Errno -2] Name or service not known")
    with pytest.raises(DataError) as e:
        load_raw(get_task("rte"))
    assert calls == [], "no download attempt, so none of the libraries' retries"
    assert str(e.value) == (
        "nyu-mll/glue (rte): no local data folder (neither --data_dir nor $MAT_DATA_DIR is set) and the Hugging Face Hub "
        "is unreachable (ConnectError: [Errno -2] Name or service not known). Set MAT_DATA_DIR or --data_dir to a data "
        "folder; `python -m mat.data prepare --out DIR [--tasks ...]` writes one from the Hub on a machine with network.")


def test_tokenize_and_loader_pad_dynamically(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    data = make_tiny_glue_dir(tmp_path / "data", n_train=10, n_dev=4)
    tok = AutoTokenizer.from_pretrained(make_tiny_model_dir(tmp_path / "model"))
    task = get_task("rte")
    raw = load_raw(get_task("rte"), data)
    enc = tokenize(raw["train"], tok, task, max_length=8, cache_dir=tmp_path / "cache")
    assert set(enc.column_names) >= {"input_ids", "attention_mask", "labels", "idx"}
    assert max(len(x) for x in enc["input_ids"]) == 8  # truncated to max_length
    assert list(enc["labels"]) == raw["train"]["label"]
    assert any((tmp_path / "cache").iterdir())  # cached on disk
    again = tokenize(raw["train"], tok, task, max_length=8, cache_dir=tmp_path / "cache")
    assert again["input_ids"] == enc["input_ids"]
    batches = list(make_loader(enc, tok, batch_size=4, shuffle=True, seed=3))
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2]
    order = [b["labels"].tolist() for b in make_loader(enc, tok, batch_size=4, shuffle=True, seed=3)]
    assert order == [b["labels"].tolist() for b in batches]  # the seed alone fixes the order


def test_combined_nli_from_local_stand_ins(tmp_path: Path) -> None:
    def write(rel: str, rows: list[dict[str, object]]) -> None:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))

    write("nli/mnli/train.jsonl", [{"premise": "a", "hypothesis": "b", "label": 0}, {"premise": "c", "hypothesis": "d", "label": 2}])
    write("nli/snli/train.jsonl", [{"premise": "e", "hypothesis": "f", "label": 1}, {"premise": "g", "hypothesis": "h", "label": -1}])
    write("nli/fever_nli/train.jsonl", [{"premise": "i", "hypothesis": "j", "label": "REFUTES"}])
    for r in (1, 2, 3):
        write(f"anli/R{r}/train.jsonl", [{"context": f"k{r}", "hypothesis": "l", "label": "n"}])
    ds = load_combined_nli(tmp_path)
    assert ds["label"] == [0, 2, 1, 2, 1, 1, 1]
    assert ds["source"] == ["mnli", "mnli", "snli", "fever_nli", "anli_r1", "anli_r2", "anli_r3"]
    assert "1 unlabelled rows dropped" in ds.info.description
    (tmp_path / "nli/snli/train.jsonl").unlink()
    with pytest.raises(DataError, match=r"snli is missing: expected .*nli/snli/train\.jsonl"):
        load_combined_nli(tmp_path)


def test_train_mix_combined_trains_anli_on_the_combined_set(tmp_path: Path) -> None:
    """``--train_mix combined``: the ANLI task trains on MNLI + SNLI + FEVER-NLI + ANLI (local stand-ins)."""
    from mat.cli import parse_cli
    from mat.provenance import resolve
    from mat.train import fit
    from tests.helpers import make_tiny_model_dir

    def write(rel: str, rows: list[dict[str, object]]) -> None:
        p = tmp_path / "data" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(json.dumps(r) + "\n" for r in rows))

    row = {"premise": "good film", "hypothesis": "bad film", "label": 2}
    for name in ("mnli", "snli", "fever_nli"):
        write(f"nli/{name}/train.jsonl", [row] * 3)
    for r in (1, 2, 3):
        write(f"anli/R{r}/train.jsonl", [{"context": "good", "hypothesis": "film", "label": "e"}] * 2)
    write("anli/R1/dev.jsonl", [{"context": "good", "hypothesis": "film", "label": "n"}] * 4)
    model = make_tiny_model_dir(tmp_path / "model", num_labels=3)
    common = ["--model", str(model), "--data_dir", str(tmp_path / "data"), "--method", "vanilla", "--device", "cpu",
              "--batch_size", "5", "--epochs", "1", "--cache_dir", str(tmp_path / "cache")]
    rec = fit(resolve(parse_cli(["--task", "anli_r1", "--train_mix", "combined", "--output_dir", str(tmp_path / "a"), *common])), show_progress=False)
    assert rec.status == "SUCCEEDED" and rec.train_steps == 3  # 3 x 3 + 3 x 2 = 15 examples, batches of 5
    assert rec.run["train_mix"] == "combined"
    with pytest.raises(SystemExit) as e:  # refused when the flags are parsed, before any data is read
        parse_cli(["--task", "rte", "--train_mix", "combined", *common])
    assert e.value.code == 2
