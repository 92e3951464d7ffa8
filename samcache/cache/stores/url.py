"""A Zarr store behind another fsspec URL (``gs://``, ``az://``, ``http://``; its package installed): read only.

samcache writes to object stores only where it can hold a writer lease (``s3.py``: conditional puts); GCS and
others speak S3's API too (e.g. GCS at https://storage.googleapis.com with HMAC keys, as ``s3://``).
"""

from __future__ import annotations

import zarr

from samcache.cache.stores.base import StoreKind


class UrlZarr(StoreKind):
    describe = "a Zarr group behind a URL"
    as_cache = "a Zarr cache behind a URL"
    write_advice = ("samcache writes to object stores only through s3:// (a writer lease needs S3's conditional "
                    "puts); use the service's S3-compatible endpoint (storage.endpoint_url)")
    writable = False
    on_this_machine = False
    locking = "none"
    atomic_rename = False
    listing = "as the service gives it"

    def matches(self, cache: str) -> bool:
        return "://" in cache

    def open(self, cache: str, mode: str, attributes: dict | None = None):
        return zarr.open_group(cache, mode="r")
