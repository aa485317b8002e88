"""``trials.experiment.create`` refuses an environment in which ``nnictl create`` would hang (NNI 3.0 with
filelock >= 3.12), and a ``nnictl create`` that does not return is an error naming what it said and how to stop
the manager, not a traceback."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trials import experiment, nni_env


def test_a_filelock_newer_than_nnis_pin_is_named_with_the_fix() -> None:
    said = nni_env.nni_dependency_problem(lambda name: "3.20.3")
    assert said is not None and "filelock 3.20.3" in said and "pip install 'filelock<3.12'" in said
    assert nni_env.nni_dependency_problem(lambda name: "3.12.0") is not None
    assert nni_env.nni_dependency_problem(lambda name: "3.11.0") is None

    def absent(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)
    assert nni_env.nni_dependency_problem(absent) is None
    # this environment (installed with the nni extra) is one nnictl works in
    assert nni_env.nni_dependency_problem() is None


def test_create_refuses_before_nnictl_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[object] = []
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "3.20.3")
    monkeypatch.setattr(experiment.subprocess, "run", lambda *a, **k: ran.append(a))
    with pytest.raises(experiment.ExperimentError, match=r"filelock<3\.12"):
        experiment.create("c.yml", 8080, bind=None)
    assert ran == []


def test_a_nnictl_that_does_not_return_is_an_error_with_its_output(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in nnictl that prints what NNI prints before the hang and then waits: the real subprocess timeout."""
    fake = tmp_path / "nnictl"
    fake.write_text(f"#!{sys.executable}\nimport time\nprint('Creating experiment, Experiment ID: \\x1b[36mab12cd34"
                    "\\x1b[0m', flush=True)\nprint('Starting web server...', flush=True)\ntime.sleep(60)\n")
    fake.chmod(0o755)
    monkeypatch.setattr(experiment, "nnictl", lambda: str(fake))
    start = time.monotonic()
    with pytest.raises(experiment.ExperimentError) as e:
        experiment.create("c.yml", 8123, timeout=2, bind=None)
    assert time.monotonic() - start < 30
    said = str(e.value)
    assert "did not return within 2 s" in said and "nnictl stop --port 8123" in said
    assert "Starting web server..." in said and "\x1b" not in said
    assert not isinstance(e.value.__cause__, subprocess.TimeoutExpired)
