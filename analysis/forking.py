"""One forked child that runs a function and exits: the mechanism behind :mod:`analysis.parallel_read` and
:mod:`analysis.figure_jobs` (POSIX ``fork``).

:func:`fork_call` flushes the standard streams, forks, and in the child runs ``body`` and leaves with
``os._exit`` (0 when it returned, 1 after printing the traceback of what it raised), so the child never runs
the parent's exit handlers or returns into the parent's code. :func:`exit_code` waits for such a child.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable


def fork_call(body: Callable[[], object]) -> int:
    """Run ``body()`` in a forked child; return the child's pid (in the parent)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    return pid


def exit_code(pid: int) -> int:
    """Wait for the child ``pid``; its exit code (0: ``body`` returned)."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
