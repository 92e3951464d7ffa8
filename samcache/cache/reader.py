"""Read a cache: splits, per-image arrays, the fingerprint. Plain zarr underneath.

The small per-image arrays (ids, sizes) are read once and kept as numpy; embeddings,
labels and instances stay lazy zarr arrays, read one chunk (one image) at a time.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import zarr

from samcache.cache.schema import Fingerprint
from samcache.cache.writer import open_root
from samcache.errors import SamcacheError


class CacheSplit:
    """One split's arrays. ``embedding(row)`` is (256, 64, 64) in the stored dtype."""

    def __init__(self, name: str, group: zarr.Group, cache_path: str):
        self.name, self.group, self.cache_path = name, group, str(cache_path)
        self.attrs = dict(group.attrs)
        self.fingerprint = Fingerprint.from_attrs(self.attrs["fingerprint"])
        self.embeddings = group["embeddings"]
        self.labels = group["labels"]
        self.instances = group["instances"]

    def __len__(self) -> int:
        return int(self.attrs["n_images"])

    @cached_property
    def image_ids(self) -> list[str]:
        return [str(i) for i in self.group["image_ids"][: len(self)].tolist()]

    @cached_property
    def original_sizes(self) -> np.ndarray:
        return self.group["original_sizes"][: len(self)]

    @cached_property
    def input_sizes(self) -> np.ndarray:
        return self.group["input_sizes"][: len(self)]

    def done_mask(self) -> np.ndarray:
        """Read fresh each call: other processes may be writing."""
        return self.group["done"][: len(self)]

    def embedding(self, row: int) -> np.ndarray:
        return self.embeddings[row]

    def nbytes_stored(self) -> int:
        return sum(int(arr.nbytes_stored()) for _, arr in self.group.arrays())

    def require_complete(self) -> list[int]:
        """All rows, or a clear error if extraction has not finished."""
        done = self.done_mask()
        if len(done) == 0 or not done.all():
            raise SamcacheError(f"split {self.name} of {self.cache_path} has {int(done.sum())}/{len(done)} images "
                                f"done; finish it with `samcache extract --split {self.name} ...` (it resumes)")
        return list(range(len(done)))


class Cache:
    def __init__(self, path: str, root: zarr.Group):
        self.path, self.root = str(path), root
        self.attrs = dict(root.attrs)
        if "fingerprint" not in self.attrs:
            raise SamcacheError(f"{path} holds no samcache fingerprint; re-create it with `samcache extract`")
        self.fingerprint = Fingerprint.from_attrs(self.attrs["fingerprint"])

    @property
    def splits(self) -> list[str]:
        return sorted(name for name, _ in self.root.groups())

    def split(self, name: str) -> CacheSplit:
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise SamcacheError(f"no split '{name}' in cache {self.path} (has: {have})")
        return CacheSplit(name, self.root[name], self.path)


def open_cache(path: str, mode: str = "r") -> Cache:
    """Open an existing cache (local path or fsspec URL) with one-line errors for anything else."""
    return Cache(path, open_root(path, mode=mode))
