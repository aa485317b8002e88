"""What the environment must hold for ``nnictl`` to work, checked before an experiment starts (NNI 3.0's
defects that depend on other packages' versions: docs/nni.md, "NNI 3.0: what to know"). No ``import nni``."""

from __future__ import annotations

import re
from typing import Callable

FILELOCK_FIX = "pip install 'filelock<3.12'"


def nni_dependency_problem(version: Callable[[str], str] | None = None) -> str | None:
    """What in this environment would make ``nnictl create`` hang, or None.

    NNI 3.0 pins ``filelock<3.12``; with a newer filelock (an install with ``--no-deps``, or an upgrade after
    NNI's) nnictl waits forever on its own experiments-file lock after "Starting web server..." (seen with
    NNI's wheel installed beside a newer filelock: the manager up and answering, nnictl blocked in
    ``nni/tools/nnictl/config_utils.py`` acquiring the lock).

    Args:
        version: the installed version of a distribution (default: ``importlib.metadata.version``).
    """
    from importlib import metadata

    get = version or metadata.version
    try:
        found = get("filelock")
    except metadata.PackageNotFoundError:
        return None
    major_minor = tuple(int(x) for x in re.findall(r"\d+", found)[:2])
    if major_minor >= (3, 12):
        return (f"filelock {found} is installed, and NNI 3.0 needs filelock<3.12: with a newer one nnictl "
                f"create hangs on its own lock. Run `{FILELOCK_FIX}` (mat-harness's nni extra pins it)")
    return None
