"""Child processes never outlive the command: DataLoader workers die with their parent.

PyTorch's workers notice a dead parent only between items, and ignore SIGTERM while they
wait; a killed main process used to leave them running for minutes. Linux's
``PR_SET_PDEATHSIG`` has the kernel kill them the moment the parent dies. Workers ignore
SIGINT: a Ctrl-C in a terminal reaches the whole process group, and the parent alone
decides how to stop (it shuts its workers down at once).
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """Ask the kernel to SIGKILL this process when its parent exits (Linux; a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _worker_init(_worker_id: int, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def worker_init_fn() -> functools.partial:
    """A DataLoader ``worker_init_fn`` bound to this (the parent) process."""
    return functools.partial(_worker_init, parent_pid=os.getpid())
