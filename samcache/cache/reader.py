"""Read a cache: splits, per-image arrays, the fingerprint. Plain zarr underneath.

The small per-image arrays (ids, sizes) are read once and kept as numpy; embeddings,
labels and instances stay lazy zarr arrays, read one chunk (one image) at a time.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import zarr

from samcache.cache.schema import Fingerprint, feature_shapes
from samcache.cache.store import open_root, ready_splits, split_state
from samcache.errors import SamcacheError


class CacheSplit:
    """One split's arrays. ``features[name]`` are the model family's maps (stored dtype);
    ``embeddings`` / ``embedding(row)`` is the main (256, 64, 64) one that heads train on."""

    def __init__(self, name: str, group: zarr.Group, cache_path: str, features: dict | None = None,
                 main_feature: str = "embeddings"):
        self.name, self.group, self.cache_path = name, group, str(cache_path)
        self.attrs = dict(group.attrs)
        self.fingerprint = Fingerprint.from_attrs(self.attrs["fingerprint"])
        self.features = {n: group[n] for n in (features or {"embeddings": None})}
        self.main_feature = main_feature
        self.embeddings = self.features[main_feature]
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

    @property
    def dropped(self) -> set[str]:
        """Rows never encoded whose source image left the dataset (see schema.split_attrs)."""
        return set(self.attrs.get("dropped", []))

    def done_mask(self) -> np.ndarray:
        """Read fresh each call: other processes may be writing."""
        return self.group["done"][: len(self)]

    def embedding(self, row: int) -> np.ndarray:
        return self.embeddings[row]

    def feature_row(self, row: int) -> dict[str, np.ndarray]:
        """Every feature map of one image: what a decoder of the family needs."""
        return {name: arr[row] for name, arr in self.features.items()}

    def nbytes_stored(self) -> int:
        return sum(int(arr.nbytes_stored()) for _, arr in self.group.arrays())

    def progress(self) -> tuple[int, int]:
        """(done, expected): dropped rows are not expected."""
        done = self.done_mask()
        dropped = self.dropped
        expected = sum(1 for i, d in zip(self.image_ids, done) if d or i not in dropped)
        return int(done.sum()), expected

    def require_complete(self) -> list[int]:
        """Every encoded row, or a clear error if extraction has not finished."""
        done, expected = self.progress()
        if expected == 0 or done < expected:
            raise SamcacheError(f"split {self.name} of {self.cache_path} has {done}/{expected} images "
                                f"done; finish it with `samcache extract --split {self.name} ...` (it resumes)")
        return [int(r) for r in np.flatnonzero(self.done_mask())]


class Cache:
    def __init__(self, path: str, root: zarr.Group):
        self.path, self.root = str(path), root
        self.attrs = dict(root.attrs)
        self.fingerprint = Fingerprint.from_attrs(self.attrs["fingerprint"])
        self.format = int(self.attrs["samcache_format"])
        self.family = self.attrs.get("family", "sam")
        self.feature_shapes = feature_shapes(self.attrs)
        self.main_feature = self.attrs.get("main_feature", "embeddings")

    @property
    def splits(self) -> list[str]:
        """Splits whose creation finished; see ``unfinished_splits`` for the rest."""
        return ready_splits(self.root)

    @property
    def unfinished_splits(self) -> list[str]:
        """Split groups whose creation was cut short (a plain re-run of extract recreates them)."""
        return sorted(n for n, _ in self.root.groups() if split_state(self.root, n) == "partial")

    def split(self, name: str) -> CacheSplit:
        if name not in self.splits:
            have = ", ".join(self.splits) or "none"
            hint = "; its creation was interrupted: re-run extract" if name in self.unfinished_splits else ""
            raise SamcacheError(f"no split '{name}' in cache {self.path} (has: {have}){hint}")
        return CacheSplit(name, self.root[name], self.path, self.feature_shapes, self.main_feature)


def open_cache(path: str, mode: str = "r") -> Cache:
    """Open an existing cache (local path or fsspec URL) with one-line errors for anything else."""
    return Cache(path, open_root(path, mode=mode))
