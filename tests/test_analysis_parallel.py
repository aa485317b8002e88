"""Two-process reading and forked figures give what the serial, in-line code gives, to the byte."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from analysis import AnalysisWarning, load_with_notes, parallel_read
from analysis.figure_jobs import FigureJobs
from analysis.synthetic import synthetic_records, write_records
from tests.test_analysis_load import add_bad_files


@pytest.fixture
def many(tmp_path: Path) -> Path:
    """30 synthetic records (some FAILED, some RUNNING) plus the bad files of the load tests, one a
    duplicate of a good record so trial identity has work to do."""
    root = tmp_path / "records"
    root.mkdir()
    write_records(synthetic_records(["vanilla", "mat"], ["rte", "stsb", "cola"], (1, 2, 3), 2, 3, limit=30,
                                    failed_every=7, running_every=11), root)
    add_bad_files(root)
    return root


def _load(roots: list[Path], processes: str, monkeypatch: pytest.MonkeyPatch,
          meanwhile: list[str] | None = None) -> tuple[pd.DataFrame, list[tuple[str, str]], list[str]]:
    monkeypatch.setenv(parallel_read.ENV, processes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_with_notes(roots, meanwhile=None if meanwhile is None else lambda: meanwhile.append("ran"))
    return loaded.frame, loaded.skipped, [str(w.message) for w in caught if w.category is AnalysisWarning]


@pytest.mark.parametrize("with_meanwhile", [False, True], ids=["halves", "thirds"])
def test_two_processes_read_what_one_reads(many: Path, monkeypatch: pytest.MonkeyPatch,
                                           with_meanwhile: bool) -> None:
    monkeypatch.setattr(parallel_read, "MIN_FILES", 2)
    serial = _load([many, many], "1", monkeypatch)
    ran: list[str] = []
    forked = _load([many, many], "2", monkeypatch, ran if with_meanwhile else None)
    pd.testing.assert_frame_equal(forked[0], serial[0])
    assert forked[1] == serial[1] and forked[2] == serial[2]
    assert len(serial[1]) > 30, "every record of the second copy is a duplicate set aside, plus the bad files"
    assert any("schema 2" in reason for _, reason in serial[1])
    assert ran == (["ran"] if with_meanwhile else [])


def test_a_failed_child_leaves_the_parent_to_read_its_part(many: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel_read, "MIN_FILES", 2)
    serial = _load([many], "1", monkeypatch)

    def broken(paths: object, fd: int, other_end: int) -> None:
        import os
        os._exit(3)

    monkeypatch.setattr(parallel_read, "_send", broken)
    forked = _load([many], "2", monkeypatch)
    pd.testing.assert_frame_equal(forked[0], serial[0])
    assert forked[1] == serial[1] and forked[2] == serial[2]


def _figure() -> object:
    from analysis.plots import new_figure

    fig, ax = new_figure(1, 1)
    ax[0][0].plot([0, 1, 2], [3, 1, 2])
    return fig


def test_a_forked_figure_is_the_same_bytes_as_one_drawn_in_line(tmp_path: Path) -> None:
    inline, forked = FigureJobs(fork=False), FigureJobs(fork=True)
    a = inline.submit(_figure, tmp_path / "a" / "fig")  # type: ignore[arg-type]
    b = forked.submit(_figure, tmp_path / "b" / "fig")  # type: ignore[arg-type]
    forked.wait()
    assert [p.name for p in a] == [p.name for p in b] == ["fig.png", "fig.pdf"]
    assert all(x.read_bytes() == y.read_bytes() and x.stat().st_size > 1000 for x, y in zip(a, b))


def test_a_figure_that_fails_in_its_child_is_named(tmp_path: Path) -> None:
    def bad() -> object:
        raise ValueError("no data to draw")

    jobs = FigureJobs(fork=True)
    jobs.submit(bad, tmp_path / "broken")  # type: ignore[arg-type]
    jobs.submit(_figure, tmp_path / "fine")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match=r"broken \(exit 1\)"):
        jobs.wait()
    assert (tmp_path / "fine.png").exists() and not (tmp_path / "broken.png").exists()
