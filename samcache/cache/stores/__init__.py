"""The kinds of store a cache can live in, and which one serves a path (see ``stores/base.py``).

Adding a kind: one module with a ``StoreKind`` subclass, and one entry in ``KINDS`` (first match wins).
"""

from __future__ import annotations

from samcache.cache.stores.base import StoreKind
from samcache.cache.stores.hdf5 import Hdf5File
from samcache.cache.stores.local import LocalZarr
from samcache.cache.stores.s3 import S3Zarr
from samcache.cache.stores.url import UrlZarr

KINDS: list[StoreKind] = [Hdf5File(), S3Zarr(), UrlZarr(), LocalZarr()]  # LocalZarr takes every other path


def kind_of(cache: str) -> StoreKind:
    """The kind of store ``cache`` names."""
    return next(kind for kind in KINDS if kind.matches(str(cache)))


def kind_settings() -> dict[str, dict]:
    """This process's settings of every kind that has some (sent to Dask workers, which start without them)."""
    return {type(kind).__name__: kind.settings() for kind in KINDS if kind.settings() is not None}


def configure_kinds(settings: dict) -> None:
    """Apply a ``storage:`` section (as the CLI reads it) or ``kind_settings()`` (on a worker)."""
    for kind in KINDS:
        own = settings.get(type(kind).__name__, settings)
        kind.configure(own)
