"""Child processes never outlive the command, and a Ctrl-C or SIGTERM is never lost.

DataLoader workers die with their parent.

PyTorch's workers notice a dead parent only between items, and ignore SIGTERM while they
wait; a killed main process used to leave them running for minutes. Linux's
``PR_SET_PDEATHSIG`` has the kernel kill them the moment the parent dies. Workers ignore
SIGINT: a Ctrl-C in a terminal reaches the whole process group, and the parent alone
decides how to stop (it shuts its workers down at once).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import sys
import threading
from typing import Iterator

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
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by ``workers_starting``: now ignored
    die_with_parent(parent_pid)


@contextlib.contextmanager
def workers_starting() -> Iterator[None]:
    """Fork DataLoader workers with SIGINT blocked: a Ctrl-C landing between a child's fork and its
    ``worker_init_fn`` would otherwise interrupt the child's start-up and print its traceback. The parent
    gets the Ctrl-C as soon as the workers are started."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def worker_init_fn() -> functools.partial:
    """A DataLoader ``worker_init_fn`` bound to this (the parent) process."""
    return functools.partial(_worker_init, parent_pid=os.getpid())


def stop_workers(batches) -> None:
    """Shut a DataLoader iterator's workers down now, not whenever garbage collection gets to it
    (an interrupt must not wait on queued batches)."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that locks, writers and workers are released."""

    exit_code = 143


_PENDING = {"signal": None}  # set by the handler, so an interrupt swallowed mid-fork still stops the run


def _on_signal(signum, frame):
    _PENDING["signal"] = signum
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _unraisable(unraisable) -> None:
    """An interrupt raised inside an at-fork hook (logging's, filelock's) cannot propagate: Python
    prints it as 'Exception ignored'. It is remembered in _PENDING and raised at the next batch."""
    if not isinstance(unraisable.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(unraisable)


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM raise in the main thread and are remembered: Python drops an exception
    raised in an at-fork hook (a signal landing while DataLoader workers are forked), so loops call
    ``check_interrupt`` and the CLI treats any error after a signal as the interrupt it is."""
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sys.unraisablehook = _unraisable


def pending_signal() -> int | None:
    return _PENDING["signal"]


def check_interrupt() -> None:
    """Raise the interrupt now if one arrived and was swallowed (call once per batch)."""
    signum = _PENDING["signal"]
    if signum is not None:
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
