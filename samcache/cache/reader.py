"""Read a cache: splits, per-image arrays, the fingerprint. Plain zarr (or h5py) underneath, no torch.

The small per-image arrays (ids, sizes) are read once and kept as numpy; feature maps, labels
and instances stay lazy arrays, read one chunk (one image) at a time. In a notebook::

    cache = samcache.open_cache("cache/cityscapes_vit_h.zarr")
    val = cache.split("val")
    maps = val.features(val.image_ids[0])      # {"embeddings": (256, 64, 64) float16} for SAM 1
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import zarr

from samcache.cache.damage_notes import CheckedArray
from samcache.cache.schema import Fingerprint, feature_shapes
from samcache.cache.locks import split_busy
from samcache.cache.store import complete_rows, open_root, ready_splits, split_state
from samcache.cache.stores import kind_of
from samcache.data.datasets import dataset_of, get_dataset
from samcache.features.families import Family, get_family
from samcache.errors import SamcacheError


class CacheSplit:
    """One split of a cache. ``feature_arrays[name]`` are the family's maps as lazy arrays (stored dtype);
    ``embeddings`` is the main one that heads train on. Images are named by id (``image_ids``) or row."""

    def __init__(self, name: str, group: zarr.Group, cache_path: str, family: Family,
                 features: dict | None = None, main_feature: str = "embeddings", dataset=None):
        self.name, self.group, self.cache_path, self.family = name, group, str(cache_path), family
        self.dataset = dataset if dataset is not None else get_dataset()  # its images' (data.dataset.Dataset)
        self.attrs = dict(group.attrs)
        self.fingerprint = Fingerprint.from_attrs(self.attrs["fingerprint"])
        self.feature_arrays = {n: self._array(n) for n in (features or {"embeddings": None})}
        self.main_feature = main_feature
        self.embeddings = self.feature_arrays[main_feature]
        self.labels = self._array("labels")
        self.instances = self._array("instances")

    def _array(self, name: str) -> CheckedArray:
        """Reads of a damaged chunk fail with one line naming split, rows and array (``cache.damage``)."""
        return CheckedArray(self.group[name], self.cache_path, self.name, name, not kind_of(self.cache_path).writable)

    def __len__(self) -> int:
        return int(self.attrs["n_images"])

    @property
    def read_ahead(self) -> bool:
        """Whether reading many rows in one call pays (the store's kind says: an object store's requests wait)."""
        return kind_of(self.cache_path).read_ahead

    @cached_property
    def image_ids(self) -> list[str]:
        """``<city>_<seq>_<frame>`` of every row, in row order (sorted at the first extraction)."""
        return [str(i) for i in self._array("image_ids")[: len(self)].tolist()]

    @cached_property
    def original_sizes(self) -> np.ndarray:
        """(N, 2) int32 (H, W) per row."""
        return self._array("original_sizes")[: len(self)]

    @cached_property
    def input_sizes(self) -> np.ndarray:
        """(N, 2) int32 (h, w) of the family's input frame each image covers."""
        return self._array("input_sizes")[: len(self)]

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {image_id: row for row, image_id in enumerate(self.image_ids)}

    def row_of(self, image: str | int) -> int:
        """The row of an image id (an int is taken as a row, checked)."""
        if isinstance(image, (int, np.integer)):
            if not 0 <= int(image) < len(self):
                raise SamcacheError(f"row {image} is out of range: split {self.name} has {len(self)} rows")
            return int(image)
        if image not in self._rows:
            raise SamcacheError(f"no image {image!r} in split {self.name} of {self.cache_path}")
        return self._rows[image]

    def features(self, image: str | int) -> dict[str, np.ndarray]:
        """Every feature map of one image, as the family names them: {name: (C, h, w)} in the stored dtype."""
        row = self._done_row(image)
        return {name: arr[row] for name, arr in self.feature_arrays.items()}

    def label_ids(self, image: str | int) -> np.ndarray:
        """(H, W) uint8 label ids (the dataset's, e.g. Cityscapes labelIds) at the original resolution."""
        row = self._done_row(image)
        return self.crop(row, self.labels[row])

    def instance_ids(self, image: str | int) -> np.ndarray:
        """(H, W) uint16 instance ids in the dataset's encoding (Cityscapes: ``id * 1000 + k`` for instances of a
        thing class; zeros for a dataset without instances)."""
        row = self._done_row(image)
        return self.crop(row, self.instances[row])

    def crop(self, row: int, plane: np.ndarray) -> np.ndarray:
        """A row's labels or instances as stored (the split's largest size, ``labels[row]``) -> the image's own
        (H, W): the rest of the chunk is padding (format 3: splits of mixed sizes)."""
        h, w = (int(v) for v in self.original_sizes[row])
        return plane[..., :h, :w]

    def original_size(self, image: str | int) -> tuple[int, int]:
        """(H, W) of the original image."""
        return tuple(int(v) for v in self.original_sizes[self.row_of(image)])

    def input_size(self, image: str | int) -> tuple[int, int]:
        """(h, w) of the input frame the image covers (for SAM 1, the rest of the frame is padding)."""
        return tuple(int(v) for v in self.input_sizes[self.row_of(image)])

    def require_model(self, fingerprint: Fingerprint, user: str) -> "CacheSplit":
        """This split, if the weights that made its features are ``fingerprint``'s (the stored dtype and
        precision may differ); else a one-line error naming both. ``user``: who has ``fingerprint``, with a verb
        ("this Decoder decodes")."""
        if not self.fingerprint.same_model(fingerprint):
            raise SamcacheError(f"split {self.name} of {self.cache_path} holds {self.fingerprint.describe()} "
                                f"features, but {user} {fingerprint.describe()} features; use them with "
                                f"what their own weights made (samcache.open_cache({self.cache_path!r}))")
        return self

    def _done_row(self, image: str | int) -> int:
        row = self.row_of(image)
        if not self._array("done")[row]:
            raise SamcacheError(f"image {self.image_ids[row]} of split {self.name} is not encoded yet "
                                f"(extraction unfinished)")
        return row

    @property
    def dropped(self) -> set[str]:
        """Rows never encoded whose source image left the dataset (see schema.split_attrs)."""
        return set(self.attrs.get("dropped", []))

    def done_mask(self) -> np.ndarray:
        """Read fresh each call: other processes may be writing (the rule: ``store.complete_rows``)."""
        return complete_rows(self.group, self._array("done"))[1][: len(self)]

    def embedding(self, row: int) -> np.ndarray:
        """(C, h, w) main feature map of a row, stored dtype."""
        return self.embeddings[row]

    def nbytes_stored(self) -> int:
        return sum(int(arr.nbytes_stored()) for _, arr in self.group.arrays())

    def progress(self) -> tuple[int, int]:
        """(done, expected): dropped rows are not expected."""
        done = self.done_mask()
        dropped = self.dropped
        expected = sum(1 for i, d in zip(self.image_ids, done) if d or i not in dropped)
        return int(done.sum()), expected

    @property
    def listed(self) -> int | None:
        """Images the data folder's split held at the last extraction (more than ``len`` after --limit)."""
        value = self.attrs.get("listed")
        return None if value is None else int(value)

    def require_complete(self) -> list[int]:
        """Every encoded row, or a clear error if extraction has not finished or is running now."""
        h5 = kind_of(self.cache_path).is_export  # an export: finished in the Zarr cache, then exported again
        if not h5 and split_busy(self.cache_path, self.name):
            raise SamcacheError(f"split {self.name} of {self.cache_path} is being extracted right now; wait for "
                                f"extract to finish (a growing split cannot be read as complete)")
        done, expected = self.progress()
        if expected == 0 or done < expected:
            advice = (f"finish it in the Zarr cache with `samcache extract --split {self.name} ...`, then "
                      f"`samcache export` it again" if h5 else
                      f"finish it with `samcache extract --split {self.name} ...` (it resumes)")
            raise SamcacheError(f"split {self.name} of {self.cache_path} has {done}/{expected} images done; {advice}")
        return [int(r) for r in np.flatnonzero(self.done_mask())]


class Cache:
    """An opened cache: its fingerprint (which weights made it), its family, its splits."""

    def __init__(self, path: str, root: zarr.Group):
        self.path, self.root = str(path), root
        self.attrs = dict(root.attrs)
        self.fingerprint = Fingerprint.from_attrs(self.attrs["fingerprint"])
        self.format = int(self.attrs["samcache_format"])
        self.family = self.attrs.get("family", "sam")
        self.family_info = get_family(self.family)
        self.feature_shapes = feature_shapes(self.attrs)
        self.main_feature = self.attrs.get("main_feature", "embeddings")
        self.dataset = dataset_of(self.attrs)  # the images' dataset (caches before format 3: Cityscapes)

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
        group = self.root[name]
        family = Fingerprint.from_attrs(dict(group.attrs)["fingerprint"]).family
        if family == self.family:
            return CacheSplit(name, group, self.path, self.family_info, self.feature_shapes, self.main_feature,
                              self.dataset)
        info = get_family(family)  # a STALE split of the family this cache held before (store.split_features)
        return CacheSplit(name, group, self.path, info, dict(info.features), info.main_feature, self.dataset)

    def as_split(self, split: CacheSplit | str, own: bool = False) -> CacheSplit:
        """A split name of this cache, or a ``CacheSplit`` as it is: of this cache, or with ``own`` False of any."""
        if isinstance(split, CacheSplit):
            if own and split.cache_path != self.path:
                raise SamcacheError(f"split {split.name} of {split.cache_path} is not a split of cache {self.path}")
            return split
        if isinstance(split, str):
            return self.split(split)
        raise SamcacheError(f"a split is a split name or a CacheSplit (cache.split(name)), not {type(split).__name__}")


def open_cache(path: str, mode: str = "r") -> Cache:
    """Open an existing cache (a ``.zarr`` directory, an fsspec URL, or an exported ``.h5`` file), read-only by
    default; anything else is a one-line ``SamcacheError``. Imports no torch."""
    return Cache(path, open_root(path, mode=mode))
