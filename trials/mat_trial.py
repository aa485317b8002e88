#!/usr/bin/env python3
"""One trial: fine-tune with MAT or a baseline, standalone or as an NNI trial.

Standalone::

    python trials/mat_trial.py --task rte --model minilm --method mat --output_dir runs/x --epochs 1

Under NNI (``nnictl create``) the same command is the ``trialCommand``: the parameters NNI sends are
merged over the flags (unknown key or bad value: the trial ends FAILED with the reason in its record and
stderr), every evaluation is reported as an intermediate result and the best one as the final result,
exactly once. ``trial.json`` goes to ``$NNI_OUTPUT_DIR`` with the parameters the trial really used
(NNI 3.0 can pair metrics with another trial's parameters in its exports; the record is the truth).

This is the only module of the project that imports ``nni``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mat.config import TrialConfig, apply_overrides, parse_cli  # noqa: E402
from mat.records import EvalResult, TrialRecord, nni_metric, write_record  # noqa: E402
from mat.tasks import get_task  # noqa: E402

log = logging.getLogger("mat.trial")

EXIT_FAILED = 1
EXIT_INTERRUPTED = 143


def _nni() -> Any | None:
    """The nni module when this process is an NNI trial, else None (standalone runs need no nni)."""
    if not os.environ.get("NNI_PLATFORM"):
        return None
    import nni

    return nni


def _failed_record(cfg: TrialConfig, params: dict[str, Any], error: str, trial_id: str | None, exp_id: str | None) -> TrialRecord:
    from mat.train import git_sha, new_record, versions

    rec = new_record(cfg, trial_id, exp_id)
    rec.params = {**cfg.params(), **params}  # what the trial received, the bad value included
    rec.status, rec.error = "FAILED", error
    rec.versions, rec.git_sha = versions(), git_sha()
    return rec


def main(argv: Sequence[str] | None = None) -> int:
    """Run one trial; returns the process exit code (0 SUCCEEDED, 1 FAILED, 143 INTERRUPTED)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    cfg = parse_cli(argv)
    nni = _nni()
    trial_id = exp_id = None
    params: dict[str, Any] = {}
    if nni is not None:
        params = nni.get_next_parameter() or {}
        trial_id, exp_id = nni.get_trial_id(), nni.get_experiment_id()
        out = cfg.run.output_dir or os.environ.get("NNI_OUTPUT_DIR") or "."
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, output_dir=out, trial_id=cfg.run.trial_id or trial_id))
        log.info("NNI trial %s of experiment %s, parameters %s", trial_id, exp_id, params)
    try:
        cfg = apply_overrides(cfg, params)
        get_task(cfg.run.task)
    except (ValueError, KeyError) as e:
        msg = f"bad parameters: {e}" if isinstance(e, ValueError) else str(e.args[0])
        log.error(msg)
        from mat.train import default_output_dir

        write_record(_failed_record(cfg, params, msg, trial_id, exp_id), default_output_dir(cfg))
        return EXIT_FAILED

    from mat.train import TrainingInterrupted, fit, new_record

    record = new_record(cfg, trial_id, exp_id)

    def report(ev: EvalResult, rec: TrialRecord) -> None:
        if nni is not None:
            nni.report_intermediate_result(nni_metric(ev))

    try:
        record = fit(cfg, record=record, on_eval=report, show_progress=sys.stderr.isatty() or nni is None)
    except TrainingInterrupted as e:
        log.warning("%s", e)
        return EXIT_INTERRUPTED
    except Exception as e:  # the record already says FAILED with the reason
        log.error("trial FAILED: %s", record.error or e, exc_info=not isinstance(e, ValueError))
        return EXIT_FAILED
    final = record.nni_metric("best")
    if nni is not None:
        nni.report_final_result(final)  # exactly once: a second report stalls NNI 3.0's TPE (#5689)
    from mat.train import default_output_dir

    log.info("trial SUCCEEDED: best %s (step %d); record %s", final, record.best.step if record.best else -1, default_output_dir(cfg) / "trial.json")
    print(f"best: {final}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
