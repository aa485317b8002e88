"""Raw data (Hub or local files): tokenization and loaders are in :mod:`mat.batching`.

Raw data comes from the Hugging Face Hub (``nyu-mll/glue``, ``facebook/anli``) by default, or from a local
folder in the classic layout (``glue/<TASK>/{train,dev,test}.tsv``, ``anli/R{1,2,3}/{train,dev,test}.jsonl``,
``advglue/dev.json``) given as ``data_dir`` or by the environment variable ``MAT_DATA_DIR``. Either way the
result is a ``datasets.DatasetDict`` with the Hub's split names, columns and label ids, plus ``idx``.

Local files are read strictly: TSVs with quoting off (default CSV quoting merges rows: MRPC train gives
3570 rows instead of 3668), every row checked for its field count and label, and any problem raised as
:class:`DataError` naming the file and line. Splits whose files are absent are simply missing from the
DatasetDict; :func:`require_split` turns a request for one into an error naming the expected file.

Without a local folder and without the Hub (no network), loading fails within seconds with one line naming
``$MAT_DATA_DIR``, ``--data_dir`` and ``python -m mat.data prepare --out DIR`` (:mod:`mat.layout`), which
writes such a folder from the Hub on a machine that has network.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from mat.spec.tasks import LocalFile, TaskSpec

DATA_DIR_ENV = "MAT_DATA_DIR"
PREPARE_COMMAND = "python -m mat.data prepare --out DIR"
HUB_PROBE_TIMEOUT = 5.0  # seconds to wait for any answer from the Hub before calling it unreachable
ADVGLUE_HUB = "AI-Secure/adv_glue"
# AdvGLUE on the Hub: one config per task, split "validation".
ADVGLUE_HUB_CONFIGS: Mapping[tuple[str, str], str] = {
    ("sst2", "adv_validation"): "adv_sst2",
    ("qqp", "adv_validation"): "adv_qqp",
    ("qnli", "adv_validation"): "adv_qnli",
    ("rte", "adv_validation"): "adv_rte",
    ("mnli", "adv_validation_matched"): "adv_mnli",
    ("mnli", "adv_validation_mismatched"): "adv_mnli_mismatched",
}


class DataError(ValueError):
    """Bad or missing data: the message names the file (and line) and what to do."""


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """``data_dir``, else ``$MAT_DATA_DIR``, else None (the Hub).

    Raises:
        DataError: the folder does not exist.
    """
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "--data_dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        raise DataError(
            f"data dir {str(path)!r} (from {source}) does not exist. Point it at a folder with the "
            "glue_data layout (glue/<TASK>/train.tsv ...), or unset it to load from the Hugging Face Hub."
        )
    return path


# ------------------------------------------------------------------------------------ local files


def _features(task: TaskSpec) -> Any:
    import datasets

    cols: dict[str, Any] = {f: datasets.Value("string") for f in task.text_fields}
    cols["label"] = (datasets.Value("float32") if task.is_regression
                     else datasets.ClassLabel(names=list(task.label_names)))
    cols["idx"] = datasets.Value("int32")
    return datasets.Features(cols)


def _tsv_rows(path: Path, spec: LocalFile) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, {source column: value}) with quoting off; field counts checked."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if spec.fmt == "tsv":
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{path}: empty file (expected a header line)") from None
            names = header
        else:
            names = [str(i) for i in range(spec.n_columns or 0)]
        rows = list(reader)
    while rows and not any(rows[-1]):  # trailing blank lines
        rows.pop()
    first = 2 if spec.fmt == "tsv" else 1
    for n, row in enumerate(rows):
        line = first + n
        if len(row) != len(names):
            raise DataError(
                f"{path}:{line}: expected {len(names)} tab-separated fields, got {len(row)}. "
                "The file is malformed (a tab inside a field, or a broken line): fix or re-download it."
            )
        yield line, dict(zip(names, row))


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{line_no}: not valid JSON ({e.msg}); fix or re-download the "
                    "file") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{line_no}: expected a JSON object per line")
            yield line_no, obj


def _advglue_rows(path: Path, key: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if key not in data:
        raise DataError(f"{path}: no key {key!r} (has {sorted(data)})")
    for i, obj in enumerate(data[key]):
        yield i, obj


def read_local_file(task: TaskSpec, path: Path, spec: LocalFile) -> Any:
    """Read one local file into a ``datasets.Dataset`` with the Hub's columns and label ids.

    Raises:
        DataError: wrong field count, a missing column, a label outside the task's label set, or
            invalid JSON; the message names file and line (for AdvGLUE: the example number).
    """
    import datasets

    if spec.fmt in ("tsv", "tsv_noheader"):
        rows: Iterator[tuple[int, Mapping[str, Any]]] = _tsv_rows(path, spec)
    elif spec.fmt == "jsonl":
        rows = _jsonl_rows(path)
    elif spec.fmt == "advglue":
        rows = _advglue_rows(path, spec.advglue_key or "")
    else:
        raise ValueError(f"unknown local format {spec.fmt!r}")
    where = "example" if spec.fmt == "advglue" else "line"
    out: dict[str, list[Any]] = {f: [] for f in (*task.text_fields, "label", "idx")}
    has_label = "label" in spec.columns
    for n, (line, row) in enumerate(rows):
        for field, src in spec.columns.items():
            if src not in row:
                raise DataError(f"{path}:{where} {line}: missing column {src!r} (has {sorted(row)})")
            if field == "label":
                out["label"].append(_label(task, row[src], f"{path}:{where} {line}"))
            else:
                out[field].append(str(row[src]))
        if not has_label:
            out["label"].append(-1.0 if task.is_regression else -1)
        idx = row.get(spec.index_column) if spec.index_column else None
        try:
            out["idx"].append(int(idx) if idx is not None and str(idx).strip() != "" else n)
        except ValueError:
            raise DataError(f"{path}:{where} {line}: index {idx!r} is not an integer") from None
    if not out["idx"]:
        raise DataError(f"{path}: no examples in the file")
    return datasets.Dataset.from_dict(out, features=_features(task))


def _label(task: TaskSpec, value: Any, where: str) -> int | float:
    if task.is_regression:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: label {value!r} is not a number ({task.name} is a regression "
                "task)") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    try:
        return task.label_id(str(value))
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None


def local_split_files(task: TaskSpec, data_dir: Path, split: str) -> list[Path]:
    """The candidate files for ``split`` under ``data_dir``, in order of preference."""
    return [data_dir / f.path for f in task.local_files.get(split, ())]


def load_local(task: TaskSpec, data_dir: Path) -> Any:
    """Every split of ``task`` whose file exists under ``data_dir``, as a DatasetDict.

    Raises:
        DataError: no file of the task exists (the message lists the expected paths), or a file is bad.
    """
    import datasets

    out = {}
    for split, candidates in task.local_files.items():
        for spec in candidates:
            path = data_dir / spec.path
            if path.is_file():
                out[split] = read_local_file(task, path, spec)
                break
    if not out:
        expected = sorted({str(data_dir / f.path) for fs in task.local_files.values() for f in fs})
        raise DataError(f"no data files for task {task.name!r} under {data_dir}; expected some of: "
            f"{', '.join(expected)}")
    return datasets.DatasetDict(out)


# ------------------------------------------------------------------------------------------- Hub


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """Why the Hub (``huggingface_hub``'s endpoint, proxies) does not answer a request; None if it does."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as e:  # noqa: BLE001  (DNS, refused, timeout, proxy, TLS: no Hub; the reason is shown)
        return f"{type(e).__name__}: {e}"
    return None


def _no_hub(what: str, reason: str) -> DataError:
    return DataError(
        f"{what}: no local data folder (neither --data_dir nor ${DATA_DIR_ENV} is set) and the Hugging Face "
        f"Hub is unreachable ({reason}). Set {DATA_DIR_ENV} or --data_dir to a data folder; "
        f"`{PREPARE_COMMAND} [--tasks ...]` writes one from the Hub on a machine with network."
    )


def hub_dataset(path: str, name: str | None = None, **kwargs: Any) -> Any:
    """``datasets.load_dataset(path, name, **kwargs)`` after one probe of the Hub (:func:`hub_unreachable`):
    no network fails within seconds, not after the libraries' retries. Offline mode (``HF_HUB_OFFLINE=1``)
    reads the cache.

    Raises:
        DataError: the Hub is unreachable and the dataset is not in the cache (the message names
            ``$MAT_DATA_DIR``, ``--data_dir`` and the prepare command).
    """
    import datasets

    what = f"{path}" + (f" ({name})" if name else "")
    config = datasets.config
    offline = getattr(config, "HF_HUB_OFFLINE", False) or getattr(config, "HF_DATASETS_OFFLINE", False)
    reason = None if offline else hub_unreachable()
    if reason is not None:
        raise _no_hub(what, reason)
    try:
        return datasets.load_dataset(path, name, **kwargs)
    except ConnectionError as e:  # offline mode without a cached copy, or the network went away meanwhile
        raise _no_hub(what, str(e)) from None


def load_hub(task: TaskSpec) -> Any:
    """The task's splits from the Hub (the path users with network take); DataError if it is unreachable."""
    import datasets

    if task.dataset_name is None:  # facebook/anli: all rounds in one dataset; keep this round's splits
        full = hub_dataset(task.dataset_path)
        keep = {s: full[s] for s in (task.train_split, *task.eval_splits, *task.test_splits) if s in full}
        ds = datasets.DatasetDict(keep)
    else:
        ds = hub_dataset(task.dataset_path, task.dataset_name)
    drop = [c for c in next(iter(ds.values())).column_names if c not in (*task.text_fields, "label", "idx")]
    return ds.remove_columns(drop) if drop else ds


def load_raw(task: TaskSpec, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """Raw examples of a task: columns = its text fields, ``label``, ``idx``; Hub split names.

    Args:
        task: the task's spec (:func:`mat.spec.tasks.get_task`).
        data_dir: local folder in the glue_data layout; default ``$MAT_DATA_DIR``, else the Hub.

    Returns:
        ``datasets.DatasetDict``; local splits whose files are absent are missing from it. Test splits
        without gold labels have label -1. AdvGLUE dev (``adv_validation*``) is included when local.

    Raises:
        DataError: missing folder or files, malformed rows, bad labels.
    """
    root = resolve_data_dir(data_dir)
    return load_hub(task) if root is None else load_local(task, root)


def require_split(raw: Any, task: TaskSpec, split: str,
    data_dir: str | os.PathLike[str] | None = None) -> Any:
    """``raw[split]``, fetching AdvGLUE from the Hub if needed, else a clear error.

    Raises:
        DataError: the split is not a split of the task, or its file is absent (names the file).
    """
    if split in raw:
        return raw[split]
    if split not in task.all_splits:
        raise DataError(f"{task.name} has no split {split!r}; its splits are {list(task.all_splits)}")
    root = resolve_data_dir(data_dir)
    if root is None and (task.name, split) in ADVGLUE_HUB_CONFIGS:
        ds = hub_dataset(ADVGLUE_HUB, ADVGLUE_HUB_CONFIGS[(task.name, split)], split="validation")
        return ds.remove_columns([c for c in ds.column_names if c not in (*task.text_fields, "label", "idx")])
    files = [str(p) for p in local_split_files(task, root, split)] if root is not None else []
    where = f"expected file: {' or '.join(files)}" if files else f"not in the Hub dataset {task.dataset_path}"
    raise DataError(f"{task.name}: split {split!r} is not available ({where})")


if __name__ == "__main__":  # python -m mat.data prepare --out DIR: the folder's writer lives in mat.layout
    from mat.layout import main
    raise SystemExit(main())
