#!/usr/bin/env python3
"""AdamW's step on MiniLM-sized parameters: torch's single-tensor loop, foreach, and fused (mat.optim's choice).

Parameters shaped as all-MiniLM-L6-v2's (22.6 M: the 30,522 x 384 word embeddings, 6 layers), random
gradients; the three implementations interleaved over ``--rounds`` rounds of ``--repeats`` steps each, so
load drift hits all alike. Prints the median step per implementation and per round, the ratios to fused,
and the largest difference of the weights after the same 5 steps (fused vs single-tensor)::

    python benchmarks/optimizer_step.py --threads 1 --rounds 3 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

MINILM_SHAPES = [(30522, 384), (512, 384), (2, 384), (384,), (384,)] + 6 * (
    [(384, 384), (384,)] * 4 + [(384,), (384,), (1536, 384), (1536,), (384, 1536), (384,), (384,), (384,)])
KINDS = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def params(seed: int = 0) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    out = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02) for s in MINILM_SHAPES]
    for p in out:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads (default: torch's)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per implementation and round (default 5)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sets = {k: params() for k in KINDS}
    opts = {k: torch.optim.AdamW(sets[k], lr=1e-5, weight_decay=0.01, **kw) for k, kw in KINDS.items()}
    for o in opts.values():
        o.step()  # state allocated outside the timing
    rounds: dict[str, list[float]] = {k: [] for k in KINDS}
    for _ in range(args.rounds):
        for k, o in opts.items():
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                o.step()
                times.append(time.perf_counter() - t)
            rounds[k].append(statistics.median(times))
    check = {k: params(1) for k in ("single", "fused")}
    for k, ps in check.items():
        o = torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.01, **KINDS[k])
        for _ in range(5):
            o.step()
    diff = max((a - b).abs().max().item() for a, b in zip(check["single"], check["fused"]))
    med = {k: statistics.median(v) for k, v in rounds.items()}
    print(json.dumps({
        "threads": args.threads, "parameters_m": round(sum(x.numel() for x in sets["fused"]) / 1e6, 2),
        "median_step_s": {k: round(v, 4) for k, v in med.items()},
        "per_round_s": {k: [round(x, 4) for x in v] for k, v in rounds.items()},
        "over_fused": {k: round(v / med["fused"], 2) for k, v in med.items()},
        "max_weight_diff_fused_vs_single_5_steps": diff,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
