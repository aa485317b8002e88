"""From raw examples to batches: tokenization (cached on disk) and padded, seeded data loaders.

No task lookups here: callers pass the task's :class:`~mat.tasks.TaskSpec`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from mat.tasks import TaskSpec


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


def make_loader(
    ds: Any, tokenizer: Any, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0
) -> Any:
    """A ``DataLoader`` that pads each batch with ``DataCollatorWithPadding``.

    Shuffling uses its own ``torch.Generator`` seeded with ``seed``: the order depends on the seed only.
    """
    columns = [c for c in ds.column_names if c != "idx"]
    ds = ds.with_format("torch", columns=columns)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen if shuffle else None,
        collate_fn=DataCollatorWithPadding(tokenizer),
        num_workers=num_workers,
    )
