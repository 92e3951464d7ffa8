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


def is_remote(cache: str) -> bool:
    return "://" in str(cache)


def _lock_path(cache: str, split: str | None) -> Path:
    path = Path(os.path.realpath(cache))  # a symlink to the store takes the same lock
    suffix = f".{split}.lock" if split else ".lock"
    return path.parent / f".{path.name}{suffix}"


@contextlib.contextmanager
def split_lock(cache: str, split: str) -> Iterator[None]:
    """Held for a whole extraction of ``split``; a second extractor stops at once with one line."""
    if is_remote(cache):
        yield
        return
    path = _lock_path(cache, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SamcacheError(f"split {split} of {cache} is being extracted by another process (lock {path}); "
                            f"wait for it to finish, or extract another split") from None
    try:
        yield
    finally:
        lock.release()


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
        lock.acquire()
    except Timeout:
        raise SamcacheError(f"{cache} stayed locked by another samcache process for {CACHE_LOCK_TIMEOUT_S} s "
                            f"(lock {path})") from None
    try:
        yield
    finally:
        lock.release()


def remove_lock_files(cache: str, splits: list[str]) -> None:
    """Delete the lock files of a store path that no other process can use any more (the demo's
    staging store, once renamed). Never for a shared path: a waiter may hold the old file open."""
    for split in (None, *splits):
        _lock_path(cache, split).unlink(missing_ok=True)
