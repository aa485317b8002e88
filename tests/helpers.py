"""Test helpers: tiny random models and tiny local datasets, built in code (no network)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRIAL_SCRIPT = REPO / "trials" / "mat_trial.py"
# Real GLUE/ANLI files in the local layout (python -m mat.data prepare --out DIR writes one): $MAT_DATA_DIR, else a
# data folder beside the checkout. Tests that need it read it in place and skip without it.
SHARED_DATA = Path(os.environ.get("MAT_DATA_DIR") or REPO.parent / "shared" / "data")
NO_SHARED_DATA = "no real GLUE/ANLI data: set MAT_DATA_DIR to a folder written by `python -m mat.data prepare --out DIR`"

WORDS = (
    "good great fine nice love best happy bad awful poor hate worst sad movie film plot actor the a is was "
    "not very it this that and but of to in on with for he she they we you yes no cat dog sat mat"
).split()
POSITIVE = ("good", "great", "fine", "nice", "love", "best", "happy")
NEGATIVE = ("bad", "awful", "poor", "hate", "worst", "sad")


def tiny_bert_config(num_labels: int = 2, vocab_size: int = 99, **kw: object):  # -> BertConfig
    """The house tiny BERT: hidden 32, 2 layers, 4 heads (STYLE.md, habit 7)."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=128,
        num_labels=num_labels,
        **kw,
    )


def make_tiny_model_dir(path: str | os.PathLike[str], num_labels: int = 2, seed: int = 0) -> Path:
    """Save a random tiny BERT with a WordPiece tokenizer over :data:`WORDS` to ``path``."""
    import torch
    from transformers import BertForSequenceClassification, BertTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz.,'"]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    import inspect

    vocab_arg = "vocab" if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters else "vocab_file"
    tok = BertTokenizerFast(**{vocab_arg: str(path / "vocab.txt")}, do_lower_case=True)
    tok.save_pretrained(path)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(tiny_bert_config(num_labels=num_labels, vocab_size=len(vocab)))
    model.save_pretrained(path)
    return path


def make_tiny_glue_dir(path: str | os.PathLike[str], n_train: int = 64, n_dev: int = 32, seed: int = 0) -> Path:
    """Write an SST-2-like and an RTE-like task in the classic ``glue_data`` layout under ``path``.

    SST-2 sentences are learnable: label 1 iff the sentence holds a positive word.
    """
    import random

    rng = random.Random(seed)
    path = Path(path)
    filler = [w for w in WORDS if w not in POSITIVE + NEGATIVE]

    def sentence(label: int) -> str:
        words = rng.sample(filler, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        return " ".join(words) + " "

    sst = path / "glue" / "SST-2"
    sst.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["sentence\tlabel"]
        for i in range(n):
            label = i % 2
            rows.append(f"{sentence(label)}\t{label}")
        (sst / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    (sst / "test.tsv").write_text("index\tsentence\n" + "".join(f"{i}\t{sentence(i % 2)}\n" for i in range(8)))

    rte = path / "glue" / "RTE"
    rte.mkdir(parents=True, exist_ok=True)
    labels = ("entailment", "not_entailment")
    for split, n in (("train", n_train), ("dev", n_dev)):
        rows = ["index\tsentence1\tsentence2\tlabel"]
        for i in range(n):
            rows.append(f"{i}\t{sentence(1)}\t{sentence(i % 2)}\t{labels[i % 2]}")
        (rte / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    (rte / "test.tsv").write_text(
        "index\tsentence1\tsentence2\n" + "".join(f"{i}\t{sentence(1)}\t{sentence(0)}\n" for i in range(8))
    )
    return path


def make_tiny_setup(base: str | os.PathLike[str], n_train: int, n_dev: int) -> dict[str, Path]:
    """``{"model": tiny BERT folder, "data": tiny glue_data folder}`` under ``base``, for trial-script tests."""
    base = Path(base)
    return {"model": make_tiny_model_dir(base / "model"), "data": make_tiny_glue_dir(base / "data", n_train=n_train, n_dev=n_dev)}


def assert_golden_steps(got: list[dict[str, float]], golden: Path) -> None:
    """Each step's statistics in ``got`` equal the ``steps`` recorded in the JSON file ``golden`` (same keys;
    values to rtol 1e-4, atol 1e-9), the message naming the statistic: the golden-loss tests of the methods."""
    import json

    from torch.testing import assert_close

    recorded = json.loads(golden.read_text())
    assert len(got) == len(recorded["steps"])
    for g, r in zip(got, recorded["steps"]):
        assert set(g) == set(r)
        for key in r:
            assert_close(g[key], r[key], rtol=1e-4, atol=1e-9, msg=lambda m, k=key: f"{k}: {m}")
