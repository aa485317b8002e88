"""From raw examples to batches: tokenization (cached on disk) and padded, seeded data loaders.

No task lookups here: callers pass the task's :class:`~mat.spec.tasks.TaskSpec`.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding

from mat.spec.tasks import TaskSpec


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mat_harness`` or ``~/.cache/mat_harness``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mat_harness"


def _tokenizer_key(tokenizer: Any) -> str:
    ident = f"{type(tokenizer).__name__}|{getattr(tokenizer, 'name_or_path', '')}|{len(tokenizer)}"
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def tokenize(
    ds: Any,
    tokenizer: Any,
    task: TaskSpec,
    max_length: int = 512,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Tokenize one split (``datasets.map``, batched, cached on disk), truncating to ``max_length``.

    Returns a Dataset with ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the tokenizer
    makes them), ``labels`` and ``idx``; no padding (the collator pads each batch).
    """
    fields = task.text_fields

    def encode(batch: Mapping[str, list[Any]]) -> Any:
        texts = [batch[f] for f in fields]
        enc = tokenizer(*texts, truncation=True, max_length=max_length)
        enc["labels"] = batch["label"]
        return enc

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    kwargs: dict[str, Any] = {}
    fingerprint = getattr(ds, "_fingerprint", None)
    if fingerprint is not None:
        cache.mkdir(parents=True, exist_ok=True)
        name = f"tok-{task.name}-{fingerprint}-{_tokenizer_key(tokenizer)}-{max_length}.arrow"
        kwargs["cache_file_name"] = str(cache / name)
    remove = [c for c in ds.column_names if c != "idx"]
    return ds.map(encode, batched=True, remove_columns=remove, desc=f"Tokenizing {task.name}", **kwargs)


MEGABATCH = 50  # batches per mega-batch of --group_by_length (HF Trainer's LengthGroupedSampler uses 50)


class LengthGroupedBatches(Sampler[list[int]]):
    """Batches of similar length, in a seeded random order (``--group_by_length``, as HF Trainer groups).

    Each epoch: a random permutation of the examples; cut into mega-batches of ``MEGABATCH`` batches; each
    mega-batch sorted by length (longest first) and cut into batches; then the batches shuffled. Which
    examples share a batch changes (less padding), each example is still seen once per epoch, and the order
    depends on the generator only. The draws happen when an epoch's iterator starts, as with torch's
    ``RandomSampler``, so a checkpoint of the generator state replays an epoch exactly.

    Args:
        lengths: tokens per example (N,).
        batch_size: examples per batch (the last batch of a mega-batch may be smaller).
        generator: the loader's generator.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, generator: torch.Generator) -> None:
        self.lengths = torch.as_tensor(list(lengths))
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        n, mega = len(self.lengths), MEGABATCH * self.batch_size
        full, rest = divmod(n, mega)
        return full * MEGABATCH + math.ceil(rest / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        perm = torch.randperm(len(self.lengths), generator=self.generator)
        batches: list[list[int]] = []
        for chunk in perm.split(MEGABATCH * self.batch_size):
            ordered = chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)]
            batches += [b.tolist() for b in ordered.split(self.batch_size)]
        order = torch.randperm(len(batches), generator=self.generator)
        return iter([batches[i] for i in order.tolist()])


class SortedByLength(Sampler[int]):
    """Examples in order of length (longest first): evaluation batches with the least padding.

    ``order[k]`` is the dataset index of the k-th example served, so predictions can be put back in
    dataset order (:func:`mat.evaluation.predict` does).
    """

    def __init__(self, lengths: Sequence[int]) -> None:
        self.order = torch.argsort(torch.as_tensor(list(lengths)), descending=True, stable=True)

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())


def make_loader(
    ds: Any, tokenizer: Any, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
    group_by_length: bool = False
) -> DataLoader:
    """A ``DataLoader`` that pads each batch with ``DataCollatorWithPadding``.

    ``shuffle``: a seeded random order (training), with ``group_by_length`` batches of similar length
    (:class:`LengthGroupedBatches`); without ``shuffle`` (evaluation) the examples come longest first
    (:class:`SortedByLength`), which changes no metric. The loader's own ``torch.Generator``, seeded with
    ``seed``, is its ``generator``: the order depends on the seed only.
    """
    lengths = [len(x) for x in ds["input_ids"]]
    columns = [c for c in ds.column_names if c != "idx"]
    ds = ds.with_format("torch", columns=columns)
    gen = torch.Generator()
    gen.manual_seed(seed)
    collate = DataCollatorWithPadding(tokenizer)
    if shuffle and group_by_length:
        return DataLoader(ds, batch_sampler=LengthGroupedBatches(lengths, batch_size, gen), generator=gen,
            collate_fn=collate, num_workers=num_workers)
    if shuffle:
        return DataLoader(ds, batch_size=batch_size, shuffle=True, generator=gen, collate_fn=collate,
            num_workers=num_workers)
    return DataLoader(ds, batch_size=batch_size, sampler=SortedByLength(lengths), collate_fn=collate,
        num_workers=num_workers)
