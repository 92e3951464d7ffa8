"""Read-only access to an exported HDF5 cache: small adapters that give h5py the part of zarr's interface
the reader uses (rows, slices, ``oindex``, groups, JSON attributes)."""

from __future__ import annotations

import json

import h5py
import numpy as np

from samcache.cache.damage import Damage, cause_of, damage_error, locate
from samcache.errors import SamcacheError


class H5Array:
    """An h5py dataset read like a zarr array: rows, slices, ``oindex[rows]``, strings as str."""

    def __init__(self, dataset: h5py.Dataset):
        self.dataset = dataset
        self.shape, self.is_str = dataset.shape, h5py.check_string_dtype(dataset.dtype) is not None
        self.dtype = np.dtype(object) if self.is_str else dataset.dtype

    def __getitem__(self, key):
        try:
            values = self._raw(key)
        except (OSError, ValueError) as exc:  # a damaged chunk: h5py says only "filter returned failure"
            found = locate(self._raw, key, self)
            if found is None:
                raise
            split, _, name = self.dataset.name.strip("/").rpartition("/")
            raise damage_error(self.dataset.file.filename, split, Damage(name, found[0], found[1], cause_of(found[2])),
                               h5=True) from None
        return np.asarray(values, dtype=object) if self.is_str and not np.isscalar(values) else values

    def _raw(self, key):
        return self.dataset.asstr()[key] if self.is_str else self.dataset[key]

    @property
    def chunks(self) -> tuple[int, ...]:
        return self.dataset.chunks or self.shape

    @property
    def oindex(self) -> "_Rows":
        return _Rows(self)

    def rows(self, rows) -> np.ndarray:
        """Any order of rows (h5py wants increasing ones)."""
        rows = np.asarray(rows)
        order = np.argsort(rows)
        out = self[rows[order].tolist()]
        result = np.empty_like(out)
        result[order] = out
        return result

    def nbytes_stored(self) -> int:
        return int(self.dataset.id.get_storage_size())


class _Rows:
    """``array.oindex[rows]`` for the HDF5 adapter (zarr's orthogonal indexing, rows only)."""

    def __init__(self, array: H5Array):
        self.array = array

    def __getitem__(self, rows):
        return self.array.rows(rows)


class H5Group:
    """An h5py group read like a zarr group, attributes decoded from JSON."""

    def __init__(self, group: h5py.Group):
        self.group = group
        self.attrs = {k: json.loads(v) for k, v in group.attrs.items()}

    def __getitem__(self, name: str):
        node = self.group[name]
        return H5Group(node) if isinstance(node, h5py.Group) else H5Array(node)

    def __contains__(self, name: str) -> bool:
        return name in self.group

    def keys(self):
        return list(self.group.keys())

    def groups(self):
        return [(k, H5Group(v)) for k, v in self.group.items() if isinstance(v, h5py.Group)]

    def arrays(self):
        return [(k, H5Array(v)) for k, v in self.group.items() if isinstance(v, h5py.Dataset)]


def open_h5(path: str) -> H5Group:
    try:
        return H5Group(h5py.File(path, "r", locking=False))
    except (OSError, ValueError) as exc:
        raise SamcacheError(f"{path} is not a readable HDF5 file ({exc})") from None
