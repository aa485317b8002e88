"""``python -m trials.components``: the component study's former command line, mapped onto the study runner.

The component study is one study config, ``studies/components.yml``, run by ``python -m trials.study``
(docs/study.md, docs/components.md). This shim maps the former subcommands and flags onto it, and says so in
one line (on stderr)::

    status --task T [--rungs R]           ->  status studies/components.yml --tasks T [--arms R]
    space --task T --out F [--rungs R]    ->  space studies/components.yml --task T --out F [--arms R]
    collect SOURCES...                    ->  collect studies/components.yml SOURCES...
    run nni_configs/components_T.yml ...  ->  run studies/components.yml --tasks T ...

``run``'s other flags pass through (``--port``, ``--concurrency``, ``--timeout``, ``--collect_every``,
``--nni_home``, ``--allow_dirty``); ``--stop`` is what the study runner always does. ``--records`` and
``--seeds`` are accepted as the study's own (``results/components``, 1-5) only, and ``run`` only a config
whose ``trialCommand`` has the study's flags.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from trials import study as runner
from trials.study_config import load_study

STUDY = Path(__file__).resolve().parents[1] / "studies" / "components.yml"


def trial_flags(config: dict[str, Any]) -> list[str]:
    """The flags of an NNI config's ``trialCommand`` after the trial script (``.../mat_trial.py``)."""
    words = shlex.split(str(config.get("trialCommand", "")))
    script = next((i for i, w in enumerate(words) if w.endswith("mat_trial.py")), -1)
    return words[script + 1:]


def config_task(config: dict[str, Any]) -> str:
    """The ``--task`` of an NNI config's ``trialCommand``.

    Raises:
        ValueError: the command has no ``--task``.
    """
    words = trial_flags(config)
    for i, word in enumerate(words):
        if word == "--task" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--task="):
            return word.split("=", 1)[1]
    raise ValueError("the config's trialCommand has no --task: cannot tell which task's cells to run")


def _seeds(text: str) -> tuple[int, ...] | None:
    """``1-5`` or ``1,2,7`` as seeds; None for anything else."""
    try:
        return tuple(s for part in text.split(",") for s in (
            range(int(part.split("-")[0]), int(part.split("-")[1]) + 1) if "-" in part else [int(part)]))
    except (ValueError, IndexError):
        return None


def study_argv(argv: Sequence[str]) -> list[str]:
    """The ``python -m trials.study`` arguments of a former ``python -m trials.components`` command line.

    Raises:
        ValueError: no subcommand, ``--records``/``--seeds`` other than the study's, or a ``run`` config
            whose trial flags are not the study's (the message says what to do instead).
    """
    if not argv or argv[0] not in ("status", "space", "collect", "run"):
        raise ValueError("usage: python -m trials.components {status,space,collect,run} ...; the component "
                         "study is python -m trials.study {status,space,run,collect} studies/components.yml")
    study, cmd, rest, out = load_study(STUDY), argv[0], list(argv[1:]), []
    if cmd == "run" and rest and not rest[0].startswith("-"):
        path = rest.pop(0)
        config = yaml.safe_load(Path(path).read_text())
        task = config_task(config)
        if trial_flags(config) != ["--task", task, "--model", study.model, *study.flags]:
            raise ValueError(f"{path}: its trialCommand's flags are not those of studies/components.yml: "
                             "start it with python -m trials.experiment run, or write a study config")
        out += ["--tasks", task]
    while rest:
        flag, eq, value = rest.pop(0).partition("=")
        if flag in ("--records", "--seeds", "--rungs", "--task") and not eq:
            value = rest.pop(0) if rest else ""
        if (flag == "--records" and Path(value).resolve() != study.records
                or flag == "--seeds" and _seeds(value) != study.report_seeds):
            raise ValueError(f"{flag} {value}: studies/components.yml runs the records {study.records} and "
                             f"seeds {list(study.report_seeds)}; for others, copy it and set records and "
                             "report_seeds (python -m trials.study)")
        if flag in ("--rungs", "--task"):
            out += [{"--rungs": "--arms", "--task": "--tasks" if cmd == "status" else "--task"}[flag], value]
        elif flag not in ("--records", "--seeds", "--stop"):
            out.append(flag + eq + value)
    return [cmd, str(STUDY), *out]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: the former command line, run as ``python -m trials.study`` (module docstring)."""
    try:
        args = study_argv(sys.argv[1:] if argv is None else argv)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    shown = " ".join(shlex.quote(a) for a in [args[0], str(STUDY.relative_to(STUDY.parents[1])), *args[2:]])
    print(f"python -m trials.components is now: python -m trials.study {shown}", file=sys.stderr)
    return runner.main(args)


if __name__ == "__main__":
    sys.exit(main())
