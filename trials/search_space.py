"""Check an NNI search-space file against a method's config before an experiment starts.

``python -m trials.search_space search_spaces/mat_paper.json --method mat`` prints every problem (unknown key,
unknown ``_type``, empty or malformed ``_value``, a choice value the config refuses) and exits 1, or
prints OK. NNI itself accepts all of these and only the trials fail, one by one, much later.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from mat.cli import parse_cli
from mat.spec.config import apply_overrides, searchable_keys
from mat.spec.methods import METHOD_ARGS

NNI_TYPES = ("choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal", "qnormal",
    "lognormal", "qlognormal")


def search_space_problems(space: Mapping[str, Any], method: str) -> list[str]:
    """Every problem of ``space`` for ``method``, as messages naming the key and the fix (empty: fine).

    A nested choice (a ``choice`` value ``{"_name": v, <key>: <spec>, ...}``) is checked as the value ``v`` of
    its key plus its own keys, as the trial flattens it.
    """
    base = parse_cli(["--method", method])
    valid = searchable_keys(method)
    problems = []
    for key, spec in space.items():
        if key not in valid:
            problems.append(f"{key!r}: not a parameter of method {method}; valid keys: {', '.join(valid)}")
            continue
        if not isinstance(spec, Mapping) or "_type" not in spec or "_value" not in spec:
            problems.append(f"{key!r}: expected {{\"_type\": ..., \"_value\": [...]}}, got {spec!r}")
            continue
        kind, values = spec["_type"], spec["_value"]
        if kind not in NNI_TYPES:
            problems.append(f"{key!r}: unknown _type {kind!r}; NNI's types are {', '.join(NNI_TYPES)}")
            continue
        if not isinstance(values, list) or not values:
            problems.append(f"{key!r}: _value must be a non-empty list, got {values!r}")
            continue
        candidates = values if kind == "choice" else values[:2] if kind in ("randint", "uniform", "quniform",
            "loguniform", "qloguniform") else []
        for v in candidates:
            if kind == "choice" and isinstance(v, Mapping) and "_name" in v:
                # a nested choice: its name, then its own keys
                inner = {k: s for k, s in v.items() if k != "_name"}
                problems += [f"{key!r} = {v['_name']!r}: {msg}"
                             for msg in search_space_problems(inner, method)]
                v = v["_name"]
            try:
                apply_overrides(base, {key: v})
            except ValueError as e:
                problems.append(f"{key!r}: value {v!r} is refused: {e}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: check one or more search-space files; exit 1 on any problem."""
    p = argparse.ArgumentParser(prog="python -m trials.search_space", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="NNI search-space JSON files")
    p.add_argument("--method", required=True, choices=list(METHOD_ARGS), help="the --method of the "
        "trialCommand")
    args = p.parse_args(argv)
    bad = 0
    for f in args.files:
        try:
            space = json.loads(Path(f).read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"{f}: cannot be read as JSON: {e}")
            bad += 1
            continue
        problems = search_space_problems(space, args.method) if isinstance(space, dict) else ["not a JSON "
            "object"]
        for msg in problems:
            print(f"{f}: {msg}")
        bad += bool(problems)
        if not problems:
            print(f"{f}: OK ({len(space)} keys)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
