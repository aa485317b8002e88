"""Shared pytest fixtures."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[Any]:
    """Tiny models gain nothing from intra-op threads, and on a loaded CPU each OpenMP region waits for
    every thread to be scheduled: one thread keeps these tests fast. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
