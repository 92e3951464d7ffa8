"""A Zarr store behind an fsspec URL (``s3://bucket/cache.zarr``, ``gs://...``; the protocol's package installed).

No lock files and no notes: there is no place beside a URL to keep them, so run one writer per split there.
"""

from __future__ import annotations

import zarr

from samcache.cache.stores.base import StoreKind


class UrlZarr(StoreKind):
    describe = "a Zarr group"
    as_cache = "a Zarr cache"
    writable = True
    on_this_machine = False

    def matches(self, cache: str) -> bool:
        return "://" in cache

    def open(self, cache: str, mode: str):
        return zarr.open_group(cache, mode=mode)
