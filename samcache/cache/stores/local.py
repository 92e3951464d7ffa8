"""A Zarr store in a folder on this machine: lock files and notes beside it, metadata checked before zarr reads.

Locks are ``filelock`` (flock on Linux, released when a process dies). The lock files sit beside the store
(``.<name>.lock``, ``.<name>.<split>.lock``), not inside it: plain zarr warns about any file in a group that is
not a Zarr node.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Iterator

import zarr
from filelock import FileLock, Timeout

from samcache.cache.stores.base import StoreKind, real_path
from samcache.errors import SamcacheError

CACHE_LOCK_TIMEOUT_S = 120  # the store/split creation phase is short; waiting longer means something hangs
SPLIT_LOCK_GRACE_S = 2.0  # a reader checks a split's lock for an instant; a writer starting then waits this long
PARTIAL = re.compile(r".+\.[0-9a-f]{32}\.partial")  # zarr LocalStore's temporary of a write (killed before its rename)


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


class LocalZarr(StoreKind):
    describe = "a Zarr group"
    as_cache = "a Zarr cache"
    writable = True
    on_this_machine = True
    locking = "file locks beside the store"
    atomic_rename = True
    listing = "consistent"

    def matches(self, cache: str) -> bool:
        return True

    def exists(self, cache: str) -> bool:
        return Path(cache).exists()

    def open(self, cache: str, mode: str, attributes: dict | None = None):
        self.check_metadata(cache)
        return zarr.open_group(cache, mode=mode, attributes=attributes)

    def absolute(self, cache: str) -> str:
        return os.path.abspath(cache)

    def same(self, a: str, b: str) -> bool:
        return real_path(a) == real_path(b)

    def note_path(self, cache: str, suffix: str) -> Path:
        path = real_path(cache)
        return path.parent / f".{path.name}{suffix}"

    def _lock_path(self, cache: str, split: str | None) -> Path:
        return self.note_path(cache, f".{split}.lock" if split else ".lock")

    @contextlib.contextmanager
    def split_lock(self, cache: str, split: str, purpose: str) -> Iterator[None]:
        path = self._lock_path(cache, split)
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

    @contextlib.contextmanager
    def cache_lock(self, cache: str) -> Iterator[None]:
        path = self._lock_path(cache, None)
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

    def split_busy(self, cache: str, split: str) -> bool:
        path = self._lock_path(cache, split)
        if not path.exists():
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

    def remove_lock_files(self, cache: str, splits: list[str]) -> None:
        for split in (None, *splits):
            self._lock_path(cache, split).unlink(missing_ok=True)

    def check_metadata(self, cache: str) -> None:
        """Every ``zarr.json`` of the store, its splits and their arrays is a Zarr v3 node's metadata; zarr itself
        would stop with a JSONDecodeError traceback the first time it lists the damaged node."""
        root = Path(cache)
        for path in [root / "zarr.json", *sorted(root.glob("*/zarr.json")), *sorted(root.glob("*/*/zarr.json"))]:
            try:
                meta = json.loads(path.read_bytes())
            except OSError:
                continue  # missing, unreadable, not a folder: zarr (or the caller) says what is wrong
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                cause = f"not valid JSON: {str(exc).splitlines()[0]}"
            else:
                if isinstance(meta, dict) and meta.get("zarr_format") == 3 and meta.get("node_type") in ("group",
                                                                                                       "array"):
                    continue
                cause = "not the metadata of a Zarr v3 group or array"
            parts = path.relative_to(root).parts
            if len(parts) == 1:
                raise SamcacheError(f"{path} is damaged ({cause}): the cache's own attributes (format, fingerprint) "
                                    f"are lost; restore the file from a backup, or extract into a new cache")
            raise SamcacheError(f"{path} is damaged ({cause}), so the cache cannot be opened; move {root / parts[0]} "
                                f"(split {parts[0]}) out of the cache and extract that split again")

    def remove_partials(self, cache: str, split: str) -> list[Path]:
        root = Path(cache)
        found = [p for p in root.glob("*.partial") if PARTIAL.fullmatch(p.name)]
        if (root / split).is_dir():
            found += [p for p in (root / split).rglob("*.partial") if PARTIAL.fullmatch(p.name) and p.is_file()]
        for path in found:
            path.unlink(missing_ok=True)
        return found
