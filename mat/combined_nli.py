"""The combined NLI training set of the paper's ANLI runs (section 4.2): SNLI + MNLI + FEVER-NLI + ANLI R1-R3
(Nie et al., 2020), from the Hub or from a local data folder (``--train_mix combined``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from mat.data import DataError, _jsonl_rows, _label, hub_dataset, resolve_data_dir
from mat.spec.tasks import get_task


@dataclass(frozen=True)
class NLISource:
    """One NLI training set of the ANLI recipe, mapped to premise/hypothesis/label (0 e, 1 n, 2 c)."""

    name: str
    hub_path: str
    hub_name: str | None
    hub_split: str
    premise: str
    hypothesis: str
    label_map: Mapping[Any, int] | None = None  # None: labels are already 0/1/2 in e/n/c order
    local_path: str = ""  # under data_dir; JSONL with premise/hypothesis/label (text or id)


# Nie et al. (2020) train ANLI models on SNLI + MNLI + FEVER-NLI + ANLI (R1-R3), as the MAT paper does (§4.2).
NLI_SOURCES: tuple[NLISource, ...] = (
    NLISource("mnli", "nyu-mll/glue", "mnli", "train", "premise", "hypothesis",
        local_path="nli/mnli/train.jsonl"),
    NLISource("snli", "stanfordnlp/snli", None, "train", "premise", "hypothesis",
        local_path="nli/snli/train.jsonl"),
    NLISource(
        "fever_nli", "pietrolesci/nli_fever", None, "train", "premise", "hypothesis",
        label_map={"SUPPORTS": 0, "NOT ENOUGH INFO": 1, "REFUTES": 2, 0: 0, 1: 1, 2: 2},
        local_path="nli/fever_nli/train.jsonl",
    ),
    *(
        NLISource(f"anli_r{r}", "facebook/anli", None, f"train_r{r}", "premise", "hypothesis",
            local_path=f"anli/R{r}/train.jsonl")
        for r in (1, 2, 3)
    ),
)


def load_combined_nli(
    data_dir: str | os.PathLike[str] | None = None, sources: Sequence[NLISource] = NLI_SOURCES
) -> Any:
    """The combined NLI training set (MNLI + SNLI + FEVER-NLI + ANLI R1-R3), shuffled by nothing.

    Rows with no gold label (SNLI's -1) are dropped and counted in ``dataset.info.description``.
    Locally each source is ``data_dir/<local_path>`` (JSONL: premise/hypothesis/label, or ANLI's
    context/hypothesis/label e|n|c). Every source must be present.

    Raises:
        DataError: a source is missing, or a row is malformed.
    """
    import datasets

    anli = get_task("anli_r1")
    root = resolve_data_dir(data_dir)
    parts = []
    dropped = 0
    for src in sources:
        if root is None:
            ds = hub_dataset(src.hub_path, src.hub_name, split=src.hub_split)
            premises, hyps, labels = ds[src.premise], ds[src.hypothesis], ds["label"]
            where = [f"{src.hub_path}[{i}]" for i in range(len(labels))]
        else:
            path = root / src.local_path
            if not path.is_file():
                raise DataError(f"combined NLI: {src.name} is missing: expected {path}")
            premises, hyps, labels, where = [], [], [], []
            for line, obj in _jsonl_rows(path):
                premises.append(obj.get("premise", obj.get("context")))
                hyps.append(obj.get("hypothesis"))
                labels.append(obj.get("label"))
                where.append(f"{path}:{line}")
        out: dict[str, list[Any]] = {"premise": [], "hypothesis": [], "label": [], "source": []}
        for p, h, lab, w in zip(premises, hyps, labels, where):
            if p is None or h is None:
                raise DataError(f"{w}: missing premise or hypothesis")
            if lab in (-1, "-1", "-", None):
                dropped += 1
                continue
            y: int | float
            if src.label_map is not None and lab in src.label_map:
                y = src.label_map[lab]
            else:
                y = _label(anli, lab, w)
            out["premise"].append(p)
            out["hypothesis"].append(h)
            out["label"].append(int(y))
            out["source"].append(src.name)
        parts.append(datasets.Dataset.from_dict(out))
    combined = datasets.concatenate_datasets(parts)
    combined = combined.cast_column("label", datasets.ClassLabel(names=list(anli.label_names)))
    names = ", ".join(s.name for s in sources)
    combined.info.description = f"combined NLI ({names}); {dropped} unlabelled rows dropped"
    return combined
