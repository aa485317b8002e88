"""What the trials read from NNI beyond its API: the experiment's store, and the parameters NNI 3.0 mixes up.

* The store (:mod:`mat.spec.nni_layout`): a trial finds its experiment's folder above its ``$NNI_SYS_DIR``,
  reads the experiment's ``trialConcurrency`` there (:func:`nni_concurrency`, to size its CPU threads) and
  links the folder NNI's web UI starts TensorBoard on to its own (:func:`link_tensorboard_for_webui`).
* microsoft/nni#5726 (and #5693): NNI 3.0 hands queued parameter sets to whichever trial asks first but files
  them by creation order, so with trials running side by side NNI's own lists (``hyperParameters`` of
  ``/trial-jobs``, a trial's end event) can pair a trial with another trial's parameters; the ``parameterId``
  of a trial's metrics is right. Here: the parameters of a listed trial are the ones its metrics name
  (:func:`trial_parameters`), and a trial re-dispatched by ``nnictl resume`` keeps the parameters it first
  ran with (:func:`own_parameters`). The analysis reads the store with the same rule
  (:mod:`analysis.nni_store`); the TPE tuner survives the mix-up on its side (:mod:`trials.safe_tpe`, a
  module NNI loads by file).
* A study runner (:mod:`trials.study`) copies each finished trial's record out of the experiment folder into
  its cell, the first one only (:func:`copy_first_record`).

No ``import nni`` here: the trial script passes its ``nni`` module in.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Mapping, Sequence

from mat.spec import nni_layout
from mat.spec.records import write_json_atomic

log = logging.getLogger("mat.trial")

PARAMETERS_FILE = "nni_parameters.json"  # the parameter record NNI first sent this trial, in its folder


def trial_parameters(jobs: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{trialJobId: parameters}`` for NNI's ``/trial-jobs`` listing, each trial's parameters found through
    the ``parameterId`` of its first metric (its own ``hyperParameters`` when it reported none), not through
    its
    ``hyperParameters`` field, which can hold another trial's (microsoft/nni#5726)."""
    by_id: dict[str, dict[str, Any]] = {}
    for t in jobs:
        for h in t.get("hyperParameters") or []:
            rec = json.loads(h)
            by_id[str(rec.get("parameter_id"))] = rec.get("parameters", {})
    metric_pid: dict[str, str] = {}
    for m in metrics:
        metric_pid.setdefault(m["trialJobId"], str(m.get("parameterId")))
    out: dict[str, dict[str, Any]] = {}
    for t in jobs:
        own = json.loads(t["hyperParameters"][0]) if t.get("hyperParameters") else {}
        pid = metric_pid.get(t["trialJobId"], str(own.get("parameter_id")))
        out[t["trialJobId"]] = by_id.get(pid, own.get("parameters", {}))
    return out


def own_parameters(nni: Any, out_dir: Path, trial_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters this trial runs with: the ones NNI sent, except after ``nnictl resume``.

    The first dispatch saves NNI's parameter record in the trial's folder. A re-dispatch
    (``"parameter_source": "resumed"``) gets the record NNI filed under this trial id, which NNI 3.0 may have
    filed under the wrong trial when trials start side by side (microsoft/nni#5726: the trial that asks first
    takes the first queued set); then the saved parameters win, so the trial continues what it ran (its
    checkpoint matches them). Its reports still carry the re-sent parameter id: NNI's dispatcher crashes on a
    final result whose id it did not re-dispatch. ``trial.json`` holds the parameters really used.
    """
    sent = getattr(getattr(nni, "trial", None), "_params", None) or {}  # NNI's parameter record (private)
    path = out_dir / PARAMETERS_FILE
    first: dict[str, Any] = {}
    if sent.get("parameter_source") == "resumed":
        log.info("re-dispatched by `nnictl resume` (parameter id %s): continuing from this trial's "
            "checkpoint if it has one", sent.get("parameter_id"))
        try:
            first = json.loads(path.read_text())
        except (OSError, ValueError):
            first = {}  # stopped before it received its parameters: it starts now, with these
    if first.get("trial_id") != trial_id or not isinstance(first.get("parameters"),
        dict) or first["parameters"] == params:
        write_json_atomic(path, {"trial_id": trial_id, **sent})
        return params
    log.warning(
        "NNI re-sent parameter id %s %s, but this trial ran with parameter id %s %s before the stop (NNI 3.0 "
        "filed its parameters under another trial, microsoft/nni#5726): continuing with the parameters it "
        "ran with",
        sent.get("parameter_id"), params, first.get("parameter_id"), first["parameters"],
    )
    return dict(first["parameters"])


def _experiment_root(environ: Mapping[str, str] | None) -> Path | None:
    """The local experiment folder above ``$NNI_SYS_DIR`` (None outside a local NNI trial)."""
    sys_dir = (os.environ if environ is None else environ).get("NNI_SYS_DIR")
    return nni_layout.experiment_dir_above(sys_dir) if sys_dir else None


def nni_concurrency(environ: Mapping[str, str] | None = None) -> int | None:
    """The ``trialConcurrency`` of the experiment this trial belongs to (local training service), else None.

    Read from the experiment's own store: ``$NNI_SYS_DIR`` is ``<experiment>/environments/<env>/trials/<id>``
    and ``<experiment>/db/nni.sqlite`` holds the experiment config (its latest ``ExperimentProfile``). On a
    remote machine there is no such store: None, and the trial keeps torch's thread count (set
    ``--num_threads`` or ``OMP_NUM_THREADS`` in the trialCommand there).
    """
    root = _experiment_root(environ)
    if root is None:
        return None
    db = nni_layout.store_path(root)
    try:
        con = nni_layout.connect(db)
        try:
            profile, _end = nni_layout.latest_profile(con)
        finally:
            con.close()
        value = profile.get("trialConcurrency")
        return int(value) if value else None
    except (sqlite3.Error, ValueError, TypeError) as e:
        log.warning("cannot read trialConcurrency from %s (%s): keeping torch's thread count", db, e)
        return None


def link_tensorboard_for_webui(out_dir: Path, trial_id: str,
    environ: Mapping[str, str] | None = None) -> Path | None:
    """Make NNI's web UI find this trial's TensorBoard files; returns the link made, or None.

    The trial writes them to ``$NNI_OUTPUT_DIR/tensorboard``
    (``<experiment>/environments/local-env/trials/<id>`` on the local training service), but NNI 3.0's
    TensorBoard manager starts TensorBoard on ``<experiment>/trials/<id>/output/tensorboard`` there (its
    ``getTrialOutputLocalPath``; ``fetchTrialOutput`` copies nothing), so the web UI's TensorBoard showed an
    empty folder. That path becomes a symbolic link to ``<out_dir>/tensorboard``. Nothing is done outside a
    local NNI experiment, or where the path holds files.
    """
    root = _experiment_root(environ)
    if root is None:
        return None
    link, target = nni_layout.webui_tensorboard_dir(root, trial_id), (out_dir / "tensorboard").resolve()
    if link.is_symlink() or (link.is_dir() and any(link.iterdir())) or link.resolve() == target:
        return None
    if link.is_dir():
        link.rmdir()  # the empty folder NNI makes when a TensorBoard is started before the trial ran
    target.mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


def copy_first_record(path: Path, dest: Path) -> bool:
    """Copy the record at ``path`` (a trial's ``trial.json`` in NNI's experiment folder) to ``dest``
    atomically unless ``dest`` has one (a study cell's first finished trial is the study's); whether it was
    copied."""
    if dest.exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    shutil.copyfile(path, tmp)
    tmp.replace(dest)
    return True
