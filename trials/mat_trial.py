#!/usr/bin/env python3
"""One trial: fine-tune with MAT or a baseline, standalone or as an NNI trial.

Standalone::

    python trials/mat_trial.py --task rte --model minilm --method mat --output_dir runs/x --epochs 1

Under NNI (``nnictl create``) the same command is the ``trialCommand``: the parameters NNI sends are
merged over the flags (unknown key or bad value: the trial ends FAILED with the reason in its record and
stderr), every evaluation is reported as an intermediate result and the best one as the final result,
exactly once. ``trial.json`` goes to ``$NNI_OUTPUT_DIR`` with the parameters the trial really used
(NNI 3.0 can pair metrics with another trial's parameters in its exports; the record is the truth).

``nnictl stop`` / ``nnictl resume`` (docs/resume.md): stopping the experiment takes NNI's command channel
away first, so the next report fails; the trial then checkpoints and ends INTERRUPTED (exit 143), as it does
on the SIGINT NNI sends a few seconds later. ``nnictl resume`` re-dispatches every trial that was running,
under the same trial id, into the same ``$NNI_OUTPUT_DIR``, so ``fit`` finds the trial's checkpoint there
and continues from it. NNI re-sends the parameter record it filed under the trial id, which with trials
running side by side can be another trial's (microsoft/nni#5726); the trial keeps the parameters it first
received (``nni_parameters.json`` in its folder), so it continues the run it was doing.

This is the only module of the project that imports ``nni``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mat.cli import REQUIRED, parameter_key, parse_cli  # noqa: E402
from mat.spec.arms import apply_study_params  # noqa: E402
from mat.spec.config import TrialConfig  # noqa: E402
from mat.spec.cost import process_age  # noqa: E402
from mat.spec.naming import FieldError  # noqa: E402
from mat.provenance import default_output_dir, new_record  # noqa: E402
from mat.spec.records import EvalResult, TrialRecord, nni_metric, write_json_atomic, write_record  # noqa: E402
from mat.runtime import set_threads, trial_threads  # noqa: E402
from mat.spec.tasks import get_task  # noqa: E402
from mat.train import TrainingInterrupted, fit  # noqa: E402

log = logging.getLogger("mat.trial")

EXIT_FAILED = 1
EXIT_INTERRUPTED = 143
PARAMETERS_FILE = "nni_parameters.json"  # the parameter record NNI first sent this trial, in its folder


def _nni() -> Any | None:
    """The nni module when this process is an NNI trial, else None (standalone runs need no nni)."""
    if not os.environ.get("NNI_PLATFORM"):
        return None
    import nni

    return nni


def _failed_record(cfg: TrialConfig, params: dict[str, Any], error: str, trial_id: str | None, exp_id: str | None) -> TrialRecord:
    rec = new_record(cfg, trial_id, exp_id)
    rec.params = {**cfg.params(), **params}  # what the trial received, the bad value included
    rec.status, rec.error = "FAILED", error
    return rec


def _own_parameters(nni: Any, out_dir: Path, trial_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters this trial runs with: the ones NNI sent, except after ``nnictl resume``.

    The first dispatch saves NNI's parameter record in the trial's folder. A re-dispatch (``"parameter_source":
    "resumed"``) gets the record NNI filed under this trial id, which NNI 3.0 may have filed under the wrong
    trial when trials start side by side (microsoft/nni#5726: the trial that asks first takes the first queued
    set); then the saved parameters win, so the trial continues what it ran (its checkpoint matches them).
    Its reports still carry the re-sent parameter id: NNI's dispatcher crashes on a final result whose id it
    did not re-dispatch. ``trial.json`` holds the parameters really used.
    """
    sent = getattr(getattr(nni, "trial", None), "_params", None) or {}  # NNI's parameter record (private)
    path = out_dir / PARAMETERS_FILE
    first: dict[str, Any] = {}
    if sent.get("parameter_source") == "resumed":
        log.info("re-dispatched by `nnictl resume` (parameter id %s): continuing from this trial's checkpoint if it has one", sent.get("parameter_id"))
        try:
            first = json.loads(path.read_text())
        except (OSError, ValueError):
            first = {}  # stopped before it received its parameters: it starts now, with these
    if first.get("trial_id") != trial_id or not isinstance(first.get("parameters"), dict) or first["parameters"] == params:
        write_json_atomic(path, {"trial_id": trial_id, **sent})
        return params
    log.warning(
        "NNI re-sent parameter id %s %s, but this trial ran with parameter id %s %s before the stop (NNI 3.0 "
        "filed its parameters under another trial, microsoft/nni#5726): continuing with the parameters it ran with",
        sent.get("parameter_id"), params, first.get("parameter_id"), first["parameters"],
    )
    return dict(first["parameters"])


def flatten_nested(params: Mapping[str, Any]) -> dict[str, Any]:
    """NNI's nested-choice parameters as flat keys: ``{"seed": {"_name": 2, "rung": "mat"}}`` -> ``{"seed": 2, "rung": "mat"}``.

    A value that is a dict with ``_name`` (what NNI sends for a nested ``choice``, as ``trials.components``
    writes) stands for its ``_name``; its other keys are lifted beside it, recursively. Flat parameters pass
    through unchanged.

    Raises:
        ValueError: a key given twice (at two levels of the nesting).
    """
    flat: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in flat:
            raise ValueError(f"parameter {key!r} is given twice ({flat[key]!r} and {value!r}) by a nested choice of the search space")
        flat[key] = value

    for key, value in params.items():
        if isinstance(value, Mapping) and "_name" in value:
            put(key, value["_name"])
            for inner_key, inner in flatten_nested({k: v for k, v in value.items() if k != "_name"}).items():
                put(inner_key, inner)
        else:
            put(key, value)
    return flat


def nni_concurrency(environ: Mapping[str, str] | None = None) -> int | None:
    """The ``trialConcurrency`` of the experiment this trial belongs to (local training service), else None.

    Read from the experiment's own store: ``$NNI_SYS_DIR`` is ``<experiment>/environments/<env>/trials/<id>``
    and ``<experiment>/db/nni.sqlite`` holds the experiment config (its latest ``ExperimentProfile``). On a
    remote machine there is no such store: None, and the trial keeps torch's thread count (set
    ``--num_threads`` or ``OMP_NUM_THREADS`` in the trialCommand there).
    """
    env = os.environ if environ is None else environ
    sys_dir = env.get("NNI_SYS_DIR")
    if not sys_dir:
        return None
    for parent in Path(sys_dir).resolve().parents:
        db = parent / "db" / "nni.sqlite"
        if db.is_file():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                try:
                    row = con.execute("SELECT params FROM ExperimentProfile ORDER BY revision DESC LIMIT 1").fetchone()
                finally:
                    con.close()
                value = json.loads(row[0]).get("trialConcurrency") if row and row[0] else None
                return int(value) if value else None
            except (sqlite3.Error, ValueError, TypeError) as e:
                log.warning("cannot read trialConcurrency from %s (%s): keeping torch's thread count", db, e)
                return None
    return None


def link_tensorboard_for_webui(out_dir: Path, trial_id: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Make NNI's web UI find this trial's TensorBoard files; returns the link made, or None.

    The trial writes them to ``$NNI_OUTPUT_DIR/tensorboard`` (``<experiment>/environments/local-env/trials/<id>``
    on the local training service), but NNI 3.0's TensorBoard manager starts TensorBoard on
    ``<experiment>/trials/<id>/output/tensorboard`` there (its ``getTrialOutputLocalPath``; ``fetchTrialOutput``
    copies nothing), so the web UI's TensorBoard showed an empty folder. That path becomes a symbolic link to
    ``<out_dir>/tensorboard``. Nothing is done outside a local NNI experiment, or where the path holds files.
    """
    env = os.environ if environ is None else environ
    sys_dir = env.get("NNI_SYS_DIR")
    if not sys_dir:
        return None
    root = next((p for p in Path(sys_dir).resolve().parents if (p / "db" / "nni.sqlite").is_file()), None)
    if root is None:
        return None
    link, target = root / "trials" / trial_id / "output" / "tensorboard", (out_dir / "tensorboard").resolve()
    if link.is_symlink() or (link.is_dir() and any(link.iterdir())) or link.resolve() == target:
        return None
    if link.is_dir():
        link.rmdir()  # the empty folder NNI makes when a TensorBoard is started before the trial ran
    target.mkdir(parents=True, exist_ok=True)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return link


def library_logs_once() -> None:
    """Let transformers, datasets and huggingface_hub log through the root handler only, so each of their
    lines is printed once, in the trial's format. datasets and huggingface_hub attach a stderr handler of
    their own when imported and still pass every record on to the root logger (each line came out twice);
    transformers keeps its own handler and format instead.
    """
    import datasets  # noqa: F401  (imported here so its handler exists before it is removed)
    import huggingface_hub  # noqa: F401
    import transformers

    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    for name in ("datasets", "huggingface_hub"):
        lib = logging.getLogger(name)
        for handler in [h for h in lib.handlers if type(h) is logging.StreamHandler]:
            lib.removeHandler(handler)
        lib.propagate = True


def main(argv: Sequence[str] | None = None) -> int:
    """Run one trial; returns the process exit code (0 SUCCEEDED, 1 FAILED, 143 INTERRUPTED)."""
    startup = process_age()  # interpreter start and imports, for the record's cost block
    cfg = parse_cli(argv, required=REQUIRED)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    library_logs_once()
    nni = _nni()
    trial_id = exp_id = None
    params: dict[str, Any] = {}
    if nni is not None:
        try:
            params = nni.get_next_parameter() or {}
        except (OSError, KeyboardInterrupt) as e:  # the experiment was stopped before this trial got its parameters
            log.warning("no parameters received (%s): the experiment was stopped; `nnictl resume` re-runs this trial", type(e).__name__)
            return EXIT_INTERRUPTED
        trial_id, exp_id = nni.get_trial_id(), nni.get_experiment_id()
        out = cfg.run.output_dir or os.environ.get("NNI_OUTPUT_DIR") or "."
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir=out, trial_id=cfg.run.trial_id or trial_id))
        log.info("NNI trial %s of experiment %s, parameters %s", trial_id, exp_id, params)
        params = _own_parameters(nni, Path(out), str(trial_id), params)
        try:
            link_tensorboard_for_webui(Path(out), str(trial_id))
        except OSError as e:  # the web UI's TensorBoard is a convenience: never fail a trial over it
            log.warning("cannot link the trial's TensorBoard folder for NNI's web UI: %s", e)
    try:
        params = flatten_nested(params)
        cfg, labels = apply_study_params(cfg, params)  # a study's method, arm and phase, then the rest
        get_task(cfg.run.task)
    except (ValueError, KeyError) as e:
        if isinstance(e, FieldError):
            e = e.renamed(parameter_key(e.field, params))  # the key as NNI sent it (sampling_times=-1)
        msg = f"bad parameters: {e}" if isinstance(e, ValueError) else str(e.args[0])
        log.error(msg)
        write_record(_failed_record(cfg, params, msg, trial_id, exp_id), default_output_dir(cfg))
        return EXIT_FAILED

    set_threads(*trial_threads(cfg.run.num_threads, nni_concurrency() if nni is not None else None))
    record = new_record(cfg, trial_id, exp_id)
    record.params.update(labels)  # the study's arm and phase (mat.spec.arms), if sent
    lost: list[str] = []  # why NNI became unreachable (nnictl stop), once it did

    def report(ev: EvalResult, rec: TrialRecord) -> None:
        if nni is None or lost:
            return
        try:
            nni.report_intermediate_result(nni_metric(ev))
        except OSError as e:  # requests' ConnectionError: nnictl stop took NNI's command channel away
            lost.append(f"{type(e).__name__}: {e}")
            log.warning("NNI is unreachable (%s): the experiment was stopped; checkpointing and stopping", lost[0])
            signal.raise_signal(signal.SIGTERM)  # fit's handler: checkpoint after this step, record INTERRUPTED

    try:
        record = fit(cfg, record=record, on_eval=report, show_progress=sys.stderr.isatty() or nni is None, startup_seconds=startup)
    except TrainingInterrupted as e:
        if lost:
            record.error = f"NNI became unreachable (experiment stopped: nnictl stop): {record.error}"
            write_record(record, default_output_dir(cfg))
        log.warning("%s", record.error or e)
        return EXIT_INTERRUPTED
    except Exception as e:  # the record already says FAILED with the reason
        log.error("trial FAILED: %s", record.error or e, exc_info=not isinstance(e, ValueError))
        return EXIT_FAILED
    final = record.nni_metric("best")
    if nni is not None:
        try:
            nni.report_final_result(final)  # exactly once: a second report stalls NNI 3.0's TPE (#5689)
        except OSError as e:  # stopped at the very end: the record is complete; `nnictl resume` re-runs and reports
            log.warning("trial finished but NNI is unreachable (%s: %s): final result not reported", type(e).__name__, e)
            return EXIT_INTERRUPTED

    log.info("trial SUCCEEDED: best %s (step %d); record %s", final, record.best.step if record.best else -1, default_output_dir(cfg) / "trial.json")
    print(f"best: {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
