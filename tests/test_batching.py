"""Length-grouped training batches and length-sorted evaluation batches (issue: faster trials)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from mat.batching import MEGABATCH, LengthGroupedBatches, make_loader, tokenize
from mat.data import load_raw
from mat.evaluation import predict
from mat.modeling import load_model_and_tokenizer
from mat.spec.metrics import compute_metrics
from mat.spec.tasks import get_task
from tests.helpers import NO_SHARED_DATA, SHARED_DATA, WORDS, make_tiny_model_dir


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_grouped_batches_cover_every_example_once_sorted_within_megabatches() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 120, size=2 * MEGABATCH * 4 + 13).tolist()
    sampler = LengthGroupedBatches(lengths, 4, _gen(1))
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2 * MEGABATCH + 4  # 413 = 2 mega-batches of 200, then 13 -> 4 batches
    assert Counter(i for b in batches for i in b) == Counter(range(len(lengths)))  # each example once
    assert all(len(b) <= 4 for b in batches)
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches if len(b) == 4]
    assert np.median(spans) < 5  # neighbours in a sorted mega-batch of 200 from U[5, 120)
    assert batches == list(LengthGroupedBatches(lengths, 4, _gen(1)))  # the seed fixes the order
    assert batches != list(LengthGroupedBatches(lengths, 4, _gen(2)))
    second = list(sampler)  # the next epoch draws a new order from the same generator
    assert second != batches and Counter(i for b in second for i in b) == Counter(range(len(lengths)))


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=NO_SHARED_DATA)
def test_grouping_cuts_padding_on_real_rte(tmp_path: Path) -> None:
    task = get_task("rte")
    model_dir = make_tiny_model_dir(tmp_path / "m")
    _, tok = load_model_and_tokenizer(str(model_dir), task)
    ds = tokenize(load_raw(task, SHARED_DATA)["train"], tok, task, 128, tmp_path / "cache")

    def padded(loader: torch.utils.data.DataLoader) -> float:
        real = total = 0
        for b in loader:
            real += int(b["attention_mask"].sum())
            total += b["attention_mask"].numel()
        return 1 - real / total

    plain = padded(make_loader(ds, tok, 16, shuffle=True, seed=0))
    grouped = padded(make_loader(ds, tok, 16, shuffle=True, seed=0, group_by_length=True))
    assert grouped < 0.5 * plain, (plain, grouped)


def test_sorted_evaluation_changes_no_prediction_and_no_metric(tmp_path: Path) -> None:
    task = get_task("sst2")
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 20)))) for _ in range(37)]
    raw = datasets.Dataset.from_dict({"sentence": sentences, "label": rng.integers(0, 2, size=37).tolist(), "idx": list(range(37))})
    model, tok = load_model_and_tokenizer(str(make_tiny_model_dir(tmp_path / "m")), task)
    ds = tokenize(raw, tok, task, 64, tmp_path / "cache")
    sorted_loader = make_loader(ds, tok, 8, shuffle=False)
    assert [len(x) for x in ds["input_ids"]] != sorted(len(x) for x in ds["input_ids"])  # lengths vary
    plain_loader = torch.utils.data.DataLoader(ds.with_format("torch", columns=[c for c in ds.column_names if c != "idx"]),
                                               batch_size=8, collate_fn=sorted_loader.collate_fn)
    p1, r1 = predict(model, sorted_loader, task, torch.device("cpu"), None)
    p2, r2 = predict(model, plain_loader, task, torch.device("cpu"), None)
    np.testing.assert_array_equal(r1, np.asarray(ds["labels"]))  # dataset order
    np.testing.assert_array_equal(p1, p2)
    assert compute_metrics(task, p1, r1) == compute_metrics(task, p2, r2)
