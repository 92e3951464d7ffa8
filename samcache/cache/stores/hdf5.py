"""A cache as one HDF5 file (``samcache export``): read-only for samcache, on this machine.

Its notes (damage records) and locks sit beside the file, as a local Zarr store's do.
"""

from __future__ import annotations

from pathlib import Path

from samcache.cache.h5read import open_h5
from samcache.cache.schema import H5_SUFFIXES
from samcache.cache.stores.local import LocalZarr
from samcache.errors import SamcacheError


class Hdf5File(LocalZarr):
    describe = "an HDF5 file"
    as_cache = "an HDF5 cache"
    writable = False
    is_export = True
    write_advice = "extract into a Zarr store and `samcache export` it"

    def matches(self, cache: str) -> bool:
        return cache.lower().endswith(H5_SUFFIXES)

    def open(self, cache: str, mode: str, attributes: dict | None = None):
        if mode != "r":
            raise SamcacheError(f"{cache} is an HDF5 cache, which samcache reads only; `samcache import` it "
                                f"into a Zarr store to change it")
        return open_h5(cache)

    def check_metadata(self, cache: str) -> None:
        """h5py reads the file's own metadata and names damage itself."""

    def remove_partials(self, cache: str, split: str) -> list[Path]:
        return []
