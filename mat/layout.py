"""A local data folder, written from the Hub: ``python -m mat.data prepare --out DIR [--tasks ...]``.

Each task's splits come from the Hugging Face Hub (:func:`mat.data.load_hub`) and are written in the layout
:func:`mat.data.load_local` reads: ``glue/<TASK>/{train,dev,test}.tsv`` (the ``glue_data`` layout, labels as
the Hub's ids), ``anli/R{1,2,3}/{train,dev,test}.jsonl``, with ``--advglue`` ``advglue/dev.json``, and with
``--combined_nli`` ``nli/<source>/train.jsonl`` (the ANLI training mix). Every file written is read back with
the harness's own reader and its row count checked. A machine without network then trains from it:
``MAT_DATA_DIR=DIR`` or ``--data_dir DIR``.

The writers take any ``datasets.Dataset`` with the Hub's columns (:func:`write_task`, :func:`write_advglue`,
:func:`write_nli_source`); the tests check them on datasets built in code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from mat.combined_nli import NLI_SOURCES, NLISource
from mat.data import (
    ADVGLUE_HUB,
    ADVGLUE_HUB_CONFIGS,
    DATA_DIR_ENV,
    DataError,
    hub_dataset,
    hub_unreachable,
    load_hub,
    load_local,
)
from mat.spec.tasks import ADVGLUE, ANLI_TASKS, GLUE_TASKS, TASKS, LocalFile, TaskSpec, get_task


def datasets_offline() -> bool:
    """The datasets library's offline mode (``HF_HUB_OFFLINE=1``): its cache answers, the Hub is not asked."""
    import datasets

    config = datasets.config
    return bool(getattr(config, "HF_HUB_OFFLINE", False) or getattr(config, "HF_DATASETS_OFFLINE", False))


def _text(value: Any, where: str) -> str:
    text = str(value)
    if any(c in text for c in "\t\n\r"):
        raise DataError(f"{where}: a tab or line break inside a field cannot be written to a TSV "
                        "that is read with quoting off")
    return text


def _label(task: TaskSpec, value: Any) -> int | float:
    return float(value) if task.is_regression else int(value)


def _rows(task: TaskSpec, ds: Any, spec: LocalFile) -> Iterable[dict[str, Any]]:
    """``{source column: value}`` per example, as ``spec`` names the columns (``idx`` to the index column)."""
    has_idx = "idx" in ds.column_names
    for n, example in enumerate(ds):
        row: dict[str, Any] = {}
        if spec.index_column is not None:
            row[spec.index_column] = example["idx"] if has_idx else n
        for field, source in spec.columns.items():
            row[source] = _label(task, example["label"]) if field == "label" else example[field]
        yield row


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        write(f)
    os.replace(tmp, path)


def write_split(task: TaskSpec, ds: Any, spec: LocalFile, out: Path) -> Path:
    """Write one split (a ``datasets.Dataset`` with the Hub's columns) as the file ``spec`` describes.

    Raises:
        DataError: a TSV field holds a tab or a line break (it could not be read back).
        ValueError: ``spec`` is an AdvGLUE file (several tasks share it: :func:`write_advglue`).
    """
    path = out / spec.path
    rows = _rows(task, ds, spec)
    if spec.fmt == "jsonl":
        _atomic_write(path, lambda f: f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif spec.fmt == "tsv":
        names = ([spec.index_column] if spec.index_column else []) + list(spec.columns.values())
        lines = ("\t".join(_text(r[c], f"{path}:{n + 2}") for c in names) for n, r in enumerate(rows))
        _atomic_write(path, lambda f: f.writelines(line + "\n" for line in ["\t".join(names), *lines]))
    elif spec.fmt == "tsv_noheader":
        width = spec.n_columns or 0
        fields = ([_text(r.get(str(i), ""), f"{path}:{n + 1}") for i in range(width)]
                  for n, r in enumerate(rows))
        _atomic_write(path, lambda f: f.writelines("\t".join(cells) + "\n" for cells in fields))
    else:
        raise ValueError(f"{spec.path}: format {spec.fmt!r} is written by write_advglue")
    return path


def write_task(task: TaskSpec, splits: Mapping[str, Any], out: Path) -> list[Path]:
    """Write every split of ``splits`` (Hub split names) the task has a local file for; returns the files.

    Each split goes to its task's first local file (``glue/MNLI/dev_matched.tsv``, not the reduced copy).
    AdvGLUE splits are left to :func:`write_advglue`.
    """
    written = []
    for split, candidates in task.local_files.items():
        spec = candidates[0]
        if split in splits and spec.fmt != "advglue":
            written.append(write_split(task, splits[split], spec, out))
    return written


def write_advglue(splits: Mapping[tuple[str, str], Any], out: Path) -> Path:
    """Write AdvGLUE dev sets ``{(task, split): Dataset}`` into the one ``advglue/dev.json``, keeping the keys
    of an existing file that these do not replace."""
    path = out / ADVGLUE
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    for (name, split), ds in splits.items():
        task = get_task(name)
        spec = task.local_files[split][0]
        data[spec.advglue_key or ""] = list(_rows(task, ds, spec))
    _atomic_write(path, lambda f: json.dump(data, f, ensure_ascii=False))
    return path


def write_nli_source(src: NLISource, ds: Any, out: Path) -> Path:
    """Write one source of the combined NLI training set as ``<out>/<src.local_path>`` (premise, hypothesis,
    label as the Hub has them; :func:`mat.combined_nli.load_combined_nli` maps the labels, drops unlabelled
    rows)."""
    path = out / src.local_path
    rows = ({"premise": e[src.premise], "hypothesis": e[src.hypothesis], "label": e["label"]} for e in ds)
    _atomic_write(path, lambda f: f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _check(task: TaskSpec, splits: Mapping[str, Any], out: Path) -> None:
    """Read the task back from ``out`` with the harness's reader; the row counts must match."""
    back = load_local(task, out)
    for split, ds in splits.items():
        if split in back and len(back[split]) != len(ds):
            got = len(back[split])
            raise DataError(f"{task.name} {split}: wrote {len(ds)} rows to {out}, read {got} back")


def prepare(out: Path, tasks: Sequence[str], advglue: bool = False, combined_nli: bool = False,
            load: Callable[[TaskSpec], Any] | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Download ``tasks`` from the Hub and write them under ``out``; returns the files written.

    Args:
        load: the task loader (default :func:`mat.data.load_hub`; tests pass one that builds datasets).

    Raises:
        DataError: the Hub is unreachable (said before anything is written), or a file read back differs.
    """
    if load is None:
        reason = None if datasets_offline() else hub_unreachable()
        if reason is not None:
            raise DataError(f"the Hugging Face Hub is unreachable ({reason}): prepare downloads from it; "
                            f"run it on a machine with network and copy {out} here, or point HF_ENDPOINT "
                            "at a mirror")
        load = load_hub
    names = [get_task(t).name for t in tasks] + (list(ANLI_TASKS) if combined_nli else [])
    written: list[Path] = []
    for name in dict.fromkeys(names):
        task = TASKS[name]
        splits = load(task)
        files = write_task(task, splits, out)
        _check(task, splits, out)
        counts = ", ".join(f"{s} {len(d)}" for s, d in splits.items())
        log(f"{name}: {counts} rows -> {', '.join(str(p) for p in files)}")
        written += files
        adv = {(name, s): hub_dataset(ADVGLUE_HUB, c, split="validation")
               for (t, s), c in ADVGLUE_HUB_CONFIGS.items() if advglue and t == name}
        if adv:
            written.append(write_advglue(adv, out))
            log(f"{name}: AdvGLUE dev {', '.join(str(len(d)) for d in adv.values())} rows -> {out / ADVGLUE}")
    for src in NLI_SOURCES if combined_nli else ():
        if not src.local_path.startswith("anli/"):  # the ANLI rounds' train files are their tasks' own
            ds = hub_dataset(src.hub_path, src.hub_name, split=src.hub_split)
            written.append(write_nli_source(src, ds, out))
            log(f"combined NLI: {src.name} -> {written[-1]}")
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mat.data prepare --out DIR [--tasks ...] [--advglue] [--combined_nli]``: 0 on success,
    1 on a data error, 2 on a usage error."""
    about = "Local copies of the Hub's datasets, for machines without network."
    p = argparse.ArgumentParser(prog="python -m mat.data", description=about)
    sub = p.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare", help="write the data folder that MAT_DATA_DIR / --data_dir point at")
    prep.add_argument("--out", required=True, type=Path, help="the folder to write (created if absent)")
    prep.add_argument("--tasks", nargs="+", default=[*GLUE_TASKS, *ANLI_TASKS], metavar="TASK",
                      help=f"tasks to write (default: all: {' '.join((*GLUE_TASKS, *ANLI_TASKS))})")
    prep.add_argument("--advglue", action="store_true",
                      help="also AdvGLUE dev (--eval_splits adv_validation) of the tasks that have it")
    prep.add_argument("--combined_nli", action="store_true",
                      help="also the ANLI training mix (--train_mix combined): MNLI, SNLI, FEVER-NLI, "
                      "ANLI R1-R3")
    args = p.parse_args(argv)
    tasks = [t for word in args.tasks for t in word.split(",") if t]
    for t in tasks:
        try:
            get_task(t)
        except KeyError as e:
            p.error(str(e.args[0]))
    try:
        files = prepare(args.out, tasks, args.advglue, args.combined_nli)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(set(files))} files under {args.out}; "
          f"train from it with {DATA_DIR_ENV}={args.out} or --data_dir {args.out}")
    return 0
