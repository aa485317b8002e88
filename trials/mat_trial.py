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
received (:func:`trials.nni_store.own_parameters`), so it continues the run it was doing.

This is the only module of the project that imports ``nni``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mat.cli import REQUIRED, parameter_key, parse_cli  # noqa: E402
from mat.provenance import default_output_dir, new_record, resolve  # noqa: E402
from mat.runtime import set_threads, trial_threads  # noqa: E402
from mat.spec.arms import apply_study_params  # noqa: E402
from mat.spec.config import TrialConfig  # noqa: E402
from mat.spec.cost import process_age  # noqa: E402
from mat.spec.naming import FieldError  # noqa: E402
from mat.spec.records import EvalResult, TrialRecord, nni_metric, write_record  # noqa: E402
from mat.train import TrainingInterrupted, fit  # noqa: E402
from trials.nni_store import link_tensorboard_for_webui, nni_concurrency, own_parameters  # noqa: E402

log = logging.getLogger("mat.trial")

EXIT_FAILED = 1
EXIT_INTERRUPTED = 143


def _nni() -> Any | None:
    """The nni module when this process is an NNI trial, else None (standalone runs need no nni)."""
    if not os.environ.get("NNI_PLATFORM"):
        return None
    import nni

    return nni


def _failed_record(cfg: TrialConfig, params: dict[str, Any], error: str, trial_id: str | None,
    exp_id: str | None) -> TrialRecord:
    rec = new_record(cfg, trial_id, exp_id)
    rec.params = {**cfg.params(), **params}  # what the trial received, the bad value included
    rec.status, rec.error = "FAILED", error
    return rec


def flatten_nested(params: Mapping[str, Any]) -> dict[str, Any]:
    """NNI's nested-choice parameters as flat keys: ``{"seed": {"_name": 2, "rung": "sampling"}}`` ->
    ``{"seed": 2, "rung": "sampling"}``.

    A value that is a dict with ``_name`` (what NNI sends for a nested ``choice``, as ``trials.study``
    writes) stands for its ``_name``; its other keys are lifted beside it, recursively. Flat parameters pass
    through unchanged.

    Raises:
        ValueError: a key given twice (at two levels of the nesting).
    """
    flat: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in flat:
            raise ValueError(f"parameter {key!r} is given twice ({flat[key]!r} and {value!r}) by a nested "
                "choice of the search space")
        flat[key] = value

    for key, value in params.items():
        if isinstance(value, Mapping) and "_name" in value:
            put(key, value["_name"])
            for inner_key, inner in flatten_nested({k: v for k, v in value.items() if k != "_name"}).items():
                put(inner_key, inner)
        else:
            put(key, value)
    return flat


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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr)
    library_logs_once()
    nni = _nni()
    trial_id = exp_id = None
    params: dict[str, Any] = {}
    if nni is not None:
        try:
            params = nni.get_next_parameter() or {}
        except (OSError, KeyboardInterrupt) as e:
            # the experiment was stopped before this trial got its parameters
            log.warning("no parameters received (%s): the experiment was stopped; `nnictl resume` re-runs "
                "this trial", type(e).__name__)
            return EXIT_INTERRUPTED
        trial_id, exp_id = nni.get_trial_id(), nni.get_experiment_id()
        out = cfg.run.output_dir or os.environ.get("NNI_OUTPUT_DIR") or "."
        run = dataclasses.replace(cfg.run, output_dir=out, trial_id=cfg.run.trial_id or trial_id)
        cfg = dataclasses.replace(cfg, run=run)
        log.info("NNI trial %s of experiment %s, parameters %s", trial_id, exp_id, params)
        params = own_parameters(nni, Path(out), str(trial_id), params)
        try:
            link_tensorboard_for_webui(Path(out), str(trial_id))
        except OSError as e:  # the web UI's TensorBoard is a convenience: never fail a trial over it
            log.warning("cannot link the trial's TensorBoard folder for NNI's web UI: %s", e)
    try:
        params = flatten_nested(params)
        cfg, labels = apply_study_params(cfg, params)  # a study's method, arm and phase, then the rest
        trial = resolve(cfg)  # the task, the method and the output folder, once
    except (ValueError, KeyError) as e:
        if isinstance(e, FieldError):
            e = e.renamed(parameter_key(e.field, params))  # the key as NNI sent it (sampling_times=-1)
        msg = f"bad parameters: {e}" if isinstance(e, ValueError) else str(e.args[0])
        log.error(msg)
        write_record(_failed_record(cfg, params, msg, trial_id, exp_id), default_output_dir(cfg))
        return EXIT_FAILED

    set_threads(*trial_threads(cfg.run.num_threads, nni_concurrency() if nni is not None else None))
    record = new_record(trial.cfg, trial_id, exp_id)
    record.params.update(labels)  # the study's arm and phase (mat.spec.arms), if sent
    lost: list[str] = []  # why NNI became unreachable (nnictl stop), once it did

    def report(ev: EvalResult, rec: TrialRecord) -> None:
        if nni is None or lost:
            return
        try:
            nni.report_intermediate_result(nni_metric(ev))
        except OSError as e:  # requests' ConnectionError: nnictl stop took NNI's command channel away
            lost.append(f"{type(e).__name__}: {e}")
            log.warning("NNI is unreachable (%s): the experiment was stopped; checkpointing and stopping",
                lost[0])
            # fit's handler: checkpoint after this step, record INTERRUPTED
            signal.raise_signal(signal.SIGTERM)

    try:
        record = fit(trial, record=record, on_eval=report, show_progress=sys.stderr.isatty() or nni is None,
            startup_seconds=startup)
    except TrainingInterrupted as e:
        if lost:
            record.error = f"NNI became unreachable (experiment stopped: nnictl stop): {record.error}"
            write_record(record, trial.out_dir)
        log.warning("%s", record.error or e)
        return EXIT_INTERRUPTED
    except Exception as e:  # the record already says FAILED with the reason
        log.error("trial FAILED: %s", record.error or e, exc_info=not isinstance(e, ValueError))
        return EXIT_FAILED
    final = record.nni_metric("best")
    if nni is not None:
        try:
            nni.report_final_result(final)  # exactly once: a second report stalls NNI 3.0's TPE (#5689)
        except OSError as e:
            # stopped at the very end: the record is complete; `nnictl resume` re-runs and reports
            log.warning("trial finished but NNI is unreachable (%s: %s): final result not reported",
                type(e).__name__, e)
            return EXIT_INTERRUPTED

    log.info("trial SUCCEEDED: best %s (step %d); record %s", final, record.best.step if record.best else -1,
        trial.out_dir / "trial.json")
    print(f"best: {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
