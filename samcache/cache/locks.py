"""Inter-process locks for writers of one cache (filelock: flock on Linux, released when a process dies).

The lock files sit beside the store (``.<name>.lock``, ``.<name>.<split>.lock``), not inside it:
plain zarr warns about any file in a group that is not a Zarr node. Remote stores (fsspec
URLs) have no lock: run one writer per split there.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from samcache.errors import SamcacheError

CACHE_LOCK_TIMEOUT_S = 120  # the store/split creation phase is short; waiting longer means something hangs
SPLIT_LOCK_GRACE_S = 2.0  # a reader checks a split's lock for an instant; a writer starting then waits this long


def is_remote(cache: str) -> bool:
    return "://" in str(cache)


def beside(cache: str, suffix: str) -> Path:
    """A samcache file beside the store, ``.<name><suffix>`` (inside, plain zarr would warn about it)."""
    path = Path(os.path.realpath(cache))  # a symlink to the store names the same file
    return path.parent / f".{path.name}{suffix}"


def _lock_path(cache: str, split: str | None) -> Path:
    return beside(cache, f".{split}.lock" if split else ".lock")


def acquire_current(lock: FileLock, path: Path) -> None:
    """Acquire ``lock`` on the file now at ``path``: a holder may unlink the file before releasing it (a store or
    split that no longer exists leaves no lock file), so a waiter that got the old file's lock tries again."""
    while True:
        lock.acquire()
        fd = lock._context.lock_file_fd  # filelock keeps the open descriptor it holds the flock on
        try:
            if fd is None or os.fstat(fd).st_ino == os.stat(path).st_ino:
                return
        except FileNotFoundError:
            pass
        lock.release()


def _release(lock: FileLock, path: Path, cache: str, split: str | None = None) -> None:
    """Release, first removing the lock file when what it guards is gone (no store; no such split)."""
    try:
        if not Path(cache).exists() or (split is not None and not (Path(cache) / split).exists()):
            path.unlink(missing_ok=True)
    finally:
        lock.release()


@contextlib.contextmanager
def split_lock(cache: str, split: str, purpose: str = "extract") -> Iterator[None]:
    """Held for a whole extraction (or export) of ``split``: the one writer, or a reader that needs the
    split not to grow under it. A second holder stops with one line (after a short grace)."""
    if is_remote(cache):
        yield
        return
    path = _lock_path(cache, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=SPLIT_LOCK_GRACE_S)
    try:
        acquire_current(lock, path)
    except Timeout:
        then = "or extract another split" if purpose == "extract" else f"then {purpose} again"
        raise SamcacheError(f"split {split} of {cache} is being extracted by another process or exported (lock "
                            f"{path}); wait for it to finish, {then}") from None
    try:
        yield
    finally:
        _release(lock, path, cache, split)


def split_busy(cache: str, split: str) -> bool:
    """True while another process holds ``split``'s lock (an extraction is growing it)."""
    path = _lock_path(cache, split)
    if is_remote(cache) or not path.exists():
        return False
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:  # a read-only folder: no writer can hold a lock there either
        return False
    lock.release()
    return False


@contextlib.contextmanager
def cache_lock(cache: str) -> Iterator[None]:
    """Held while the store or a split group is created or checked; other splits' writers wait."""
    if is_remote(cache):
        yield
        return
    path = _lock_path(cache, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=CACHE_LOCK_TIMEOUT_S)
    try:
        acquire_current(lock, path)
    except Timeout:
        raise SamcacheError(f"{cache} stayed locked by another samcache process for {CACHE_LOCK_TIMEOUT_S} s "
                            f"(lock {path})") from None
    try:
        yield
    finally:
        _release(lock, path, cache)


def remove_lock_files(cache: str, splits: list[str]) -> None:
    """Delete the lock files of a store path that no other process can use any more (the demo's
    staging store, once renamed). Never for a shared path: a waiter may hold the old file open."""
    for split in (None, *splits):
        _lock_path(cache, split).unlink(missing_ok=True)
