"""The θ Langevin noise of MAT: chunked, seeded, parallel N(0, 1) draws for large CPU buffers."""

from __future__ import annotations

import torch

from mat.methods.mat import standard_normal_


def test_small_buffers_keep_the_global_stream() -> None:
    torch.manual_seed(3)
    want = torch.empty(1000).normal_()
    torch.manual_seed(3)
    got = standard_normal_(torch.empty(1000), chunk=1000)
    assert torch.equal(got, want)  # at most one chunk: the old stream, golden losses unchanged


def test_chunked_draws_depend_on_the_seed_only_not_on_the_workers() -> None:
    n, chunk = 10_000 + 17, 1024  # 10 chunks, the last one short
    runs = []
    for workers in (1, 2, 4):
        torch.manual_seed(11)
        runs.append(standard_normal_(torch.empty(n), chunk=chunk, workers=workers))
        after = torch.rand(1)  # the global generator advanced by exactly one draw, whatever the workers
        runs.append(after)
    assert torch.equal(runs[0], runs[2]) and torch.equal(runs[0], runs[4])
    assert torch.equal(runs[1], runs[3]) and torch.equal(runs[1], runs[5])
    torch.manual_seed(12)
    assert not torch.equal(standard_normal_(torch.empty(n), chunk=chunk), runs[0])  # another seed, other noise
    parts = runs[0].split(chunk)
    assert not any(torch.equal(parts[0][:100], p[:100]) for p in parts[1:])  # chunks are not copies of each other


def test_chunked_draws_are_standard_normal() -> None:
    torch.manual_seed(0)
    x = standard_normal_(torch.empty(4_000_000), chunk=1 << 18, workers=2).double()
    assert abs(x.mean().item()) < 3 * 1 / 2000  # 3 standard errors of the mean
    assert abs(x.std().item() - 1) < 2e-3
    assert abs(((x.abs() < 1).double().mean() - 0.682689).item()) < 1e-3  # the N(0, 1) mass within one sigma
