"""What a kind of store can do, written down once: the commands ask a ``StoreKind``, never a path's spelling.

A kind is one module (``local.py``, ``url.py``, ``hdf5.py`` beside this one) holding one ``StoreKind``
subclass and registered in ``stores/__init__.py``'s ``KINDS``. The first kind whose ``matches`` accepts a
cache path serves it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import ClassVar, Iterator


class StoreKind:
    """One kind of store. Class attributes are its capabilities; methods do what differs between kinds."""

    describe: ClassVar[str]  # "a Zarr group", "an HDF5 file": in messages about what the path is
    as_cache: ClassVar[str]  # "a Zarr cache", "an HDF5 cache": in messages about what samcache may do with it
    writable: ClassVar[bool]  # extract, verify --repair, delete-split and upgrade may change it
    on_this_machine: ClassVar[bool]  # a path here: checked against the dataset, compared by its real path
    locking: ClassVar[str] = "none"  # how one writer per split is kept: file locks, leases (conditional puts)
    atomic_rename: ClassVar[bool] = False  # a whole store can be staged and renamed into place (import)
    listing: ClassVar[str] = "consistent"  # whether a listing shows every finished write at once
    read_ahead: ClassVar[bool] = False  # reads of many rows at once pay off (requests in flight, not in turn)
    is_export: ClassVar[bool] = False  # an export (HDF5): finished in its Zarr cache, then exported again
    write_advice: ClassVar[str] = ""  # what to do instead of writing into a read-only kind

    def capabilities(self) -> str:
        """One line for ``samcache info``: what this kind can and cannot do."""
        access = "read/write" if self.writable else "read-only"
        rename = "atomic rename" if self.atomic_rename else "no rename"
        return f"{self.as_cache}: {access}, locking: {self.locking}, {rename}, listing: {self.listing}"

    def matches(self, cache: str) -> bool:
        """Whether this kind serves ``cache`` (kinds are asked in ``KINDS`` order)."""
        raise NotImplementedError

    def settings(self) -> dict | None:
        """This kind's process-wide settings (endpoint, region, ...), or None where it has none."""
        return None

    def configure(self, settings: dict) -> None:
        """Take this kind's part of a config's ``storage:`` section (the others' keys are ignored)."""

    def exists(self, cache: str) -> bool:
        """Something is at ``cache`` (a remote store may answer True and then hold nothing)."""
        return True

    def open(self, cache: str, mode: str, attributes: dict | None = None):
        """The root group (zarr's, or an adapter with the part of its interface samcache reads); ``attributes``
        are a new group's, written with its metadata in one put."""
        raise NotImplementedError

    def absolute(self, cache: str) -> str:
        """The path other processes (Dask workers, a saved config) reach the same store by."""
        return cache

    def same(self, a: str, b: str) -> bool:
        """Whether two paths of this kind name one store."""
        return self.absolute(a) == self.absolute(b)

    def note_path(self, cache: str, suffix: str) -> Path | None:
        """Where samcache keeps a note about the store (lock file, damage record), or None where it cannot."""
        return None

    @contextlib.contextmanager
    def split_lock(self, cache: str, split: str, purpose: str) -> Iterator[None]:
        """Held by the one writer of ``split`` (or a reader that needs it not to grow). Default: no lock."""
        yield

    @contextlib.contextmanager
    def cache_lock(self, cache: str) -> Iterator[None]:
        """Held while the store or a split group is created or checked. Default: no lock."""
        yield

    def split_busy(self, cache: str, split: str) -> bool:
        """True while another process holds ``split``'s lock."""
        return False

    def remove_lock_files(self, cache: str, splits: list[str]) -> None:
        """Delete the lock files of a path no other process can use any more (the demo's staging store, once
        renamed). Never for a shared path: a waiter may hold the old file open."""

    def check_metadata(self, cache: str) -> None:
        """Name a damaged metadata file in one line before zarr trips over it (where the kind can look)."""

    def remove_tree(self, cache: str) -> None:
        """Delete a whole store samcache created and never finished (a killed import where no rename exists)."""
        raise NotImplementedError

    def remove_partials(self, cache: str, split: str) -> list[Path]:
        """Delete temporaries that killed writes left behind; returns what was removed."""
        return []


def real_path(cache: str) -> Path:
    """A local store by its real path: a symlink to the store names the same store."""
    return Path(os.path.realpath(cache))
