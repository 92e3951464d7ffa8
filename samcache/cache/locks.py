"""One writer per split: the locks every command takes, served by the store's kind (``stores/``).

A local store (or HDF5 file) has lock files beside it (``stores/local.py``); a store behind a URL has none
yet: run one writer per split there.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from samcache.cache.stores import kind_of


@contextlib.contextmanager
def split_lock(cache: str, split: str, purpose: str = "extract") -> Iterator[None]:
    """Held for a whole extraction (or export) of ``split``: the one writer, or a reader that needs the
    split not to grow under it. A second holder stops with one line (after a short grace)."""
    with kind_of(cache).split_lock(str(cache), split, purpose):
        yield


def split_busy(cache: str, split: str) -> bool:
    """True while another process holds ``split``'s lock (an extraction is growing it)."""
    return kind_of(cache).split_busy(str(cache), split)


@contextlib.contextmanager
def cache_lock(cache: str) -> Iterator[None]:
    """Held while the store or a split group is created or checked; other splits' writers wait."""
    with kind_of(cache).cache_lock(str(cache)):
        yield


def remove_lock_files(cache: str, splits: list[str]) -> None:
    """Delete the lock files of a store path that no other process can use any more (see ``StoreKind``)."""
    kind_of(cache).remove_lock_files(str(cache), splits)
