"""Two arms' per-seed rows paired by seed value, and what makes a pairing doubtful.

:func:`sides` gathers, per comparison group, each arm's rows (count, per-seed mean, precisions) with three
group-bys over the whole frame; :func:`pairs` lines two arms up on the seeds both ran and words the seed
problems :mod:`analysis.comparison` reports: seeds one arm ran and the other did not, seeds run twice, arms
run at different precisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

PRECISION = "param.precision"  # the format a trial computed in (the record's params.precision)


def seed_text(seeds: Sequence[object]) -> str:
    """Seeds as ``1,2,3``."""
    return ",".join(str(s) for s in seeds)


@dataclass
class Side:
    """One arm's rows in one comparison group: their count, ``seed -> (mean value, values counted)`` in seed
    order, and the precisions its trials ran at (sorted; None when the frame has no precision column)."""

    n: int = 0
    seeds: dict[Any, tuple[float, int]] = field(default_factory=dict)
    precisions: list[str] | None = None


def sides(s: pd.DataFrame, by: Sequence[str]) -> dict[tuple[Any, ...], dict[str, Side]]:
    """``{group key: {arm: Side}}`` for the rows ``s`` (already one split and metric), groups in sorted
    order: three groupbys over the whole frame instead of several per group."""
    keys = [*by, "arm"]
    out: dict[tuple[Any, ...], dict[str, Side]] = {}
    for key, n in s.groupby(keys, sort=True).size().items():
        out.setdefault(tuple(key[:-1]), {})[key[-1]] = Side(int(n))
    per_seed = s.groupby([*keys, "seed"], sort=True)["value"].agg(["mean", "count"])
    for key, mean, count in zip(per_seed.index, per_seed["mean"].to_numpy(), per_seed["count"].to_numpy()):
        out[tuple(key[:-2])][key[-2]].seeds[key[-1]] = (float(mean), int(count))
    if PRECISION in s.columns:
        for side in (x for group in out.values() for x in group.values()):
            side.precisions = []
        known = s[s[PRECISION].notna()]
        for key, values in known.groupby(keys, sort=True)[PRECISION].unique().items():
            out[tuple(key[:-1])][key[-1]].precisions = sorted({str(v) for v in values})
    return out


def pairs(a: Side, b: Side, arm_a: str, arm_b: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Per-seed means of the seeds both arms ran (in seed order), and the seed problems (only-a, only-b,
    repeated) as text."""
    shared = [seed for seed in a.seeds if seed in b.seeds]
    va = np.array([a.seeds[seed][0] for seed in shared], dtype=float)
    vb = np.array([b.seeds[seed][0] for seed in shared], dtype=float)
    only_a = [seed for seed in a.seeds if seed not in b.seeds]
    only_b = [seed for seed in b.seeds if seed not in a.seeds]
    rep = [f"{seed} ({arm_a})" for seed, (_, n) in a.seeds.items() if n > 1] + [
        f"{seed} ({arm_b})" for seed, (_, n) in b.seeds.items() if n > 1]
    notes = []
    if only_a or only_b:
        notes.append(f"seed sets differ: only {arm_a} ran {seed_text(only_a) or '-'}, only {arm_b} ran "
                     f"{seed_text(only_b) or '-'}; compared on the {len(shared)} shared seeds")
    if rep:
        notes.append(f"seed(s) repeat: {', '.join(rep)}; their values are averaged before pairing")
    notes += [n for n in [precision_note(a.precisions, b.precisions, arm_a, arm_b)] if n]
    text = {"seeds_only_a": seed_text(only_a), "seeds_only_b": seed_text(only_b),
            "repeated_seeds": ", ".join(rep), "warning": "; ".join(notes)}
    return va, vb, text


def precision_note(pa: list[str] | None, pb: list[str] | None, method_a: str, method_b: str) -> str:
    """A warning when the two arms did not all run at one precision (bf16 against fp32 is not like for like);
    "" when they did, or when a side's precision is unknown (NNI trials without a record)."""
    if not pa or not pb or (pa == pb and len(pa) == 1):
        return ""
    return (f"the arms ran at different precisions ({method_a}: {', '.join(pa)}; {method_b}: "
            f"{', '.join(pb)}): part of the difference may be the number format; run every arm with one "
            "--precision")
