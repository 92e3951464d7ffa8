"""The cache as one HDF5 file: export, import (every chunk as exported), and read-only access for Stage 2.

HPC quotas count files; a Zarr directory store of Cityscapes is ~25,000 of them. The HDF5 file
holds the same groups, arrays and attributes: one image per chunk in the per-image arrays, a
filter h5py ships (gzip with byte shuffle by default, or lzf), every attribute as a JSON string.
Plain h5py reads it (README); samcache reads it through ``samcache.cache.h5read``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import zarr
from filelock import FileLock, Timeout

from samcache.cache.damage_notes import CheckedArray
from samcache.cache.h5read import open_h5
from samcache.cache.locks import cache_lock, split_lock
from samcache.cache.stores import kind_of
from samcache.cache.stores.local import acquire_current
from samcache.cache.schema import CODECS, COMPRESSIONS, DEFAULT_COMPRESSION, META_CHUNK
from samcache.cache.store import check_location, complete_rows, enclosing_store, open_root, ready_splits
from samcache.errors import SamcacheError, setting

STRING = h5py.string_dtype("utf-8")


def _copy_rows(source, target, rows: int, step: int, string: bool = False) -> None:
    for start in range(0, rows, step):
        values = source[start: min(start + step, rows)]
        target[start: start + step] = np.asarray(values, dtype=object) if string else values


def export_h5(cache: str, out: str, splits: list[str] | None = None, compression: str = DEFAULT_COMPRESSION,
              overwrite: bool = False) -> dict:
    """Write ``splits`` (default: all) of a Zarr cache into one HDF5 file, atomically; returns sizes."""
    if kind_of(cache).is_export:
        raise SamcacheError(f"{cache} is already {kind_of(cache).as_cache}; copy the file, or `samcache import` it into Zarr")
    root = open_root(cache)
    names = ready_splits(root)  # a split whose creation was cut short holds nothing to export
    chosen = list(dict.fromkeys(splits or names))  # a split named twice is exported once
    missing = [s for s in chosen if s not in names]
    if missing:
        raise SamcacheError(f"no split {missing[0]!r} in cache {cache} (has: {', '.join(names) or 'none'})")
    out_path = Path(out)
    store = enclosing_store(out_path.parent)
    if store is not None:
        raise SamcacheError(f"OUT {out} lies inside the samcache cache {store}; write the file elsewhere")
    for name in chosen:  # the same rule as extract's cache and Stage 2's --out: nothing is written into the dataset
        data = root[name].attrs.get("data_root")
        real = Path(os.path.realpath(out_path))
        if data and Path(os.path.realpath(data)) in real.parents:
            raise SamcacheError(f"OUT {out} lies inside the dataset {data} (split {name} was extracted from it); "
                                f"write the file elsewhere")
    if out_path.is_dir():
        raise SamcacheError(f"OUT {out} is a directory; give the path of the .h5 file to write")
    if out_path.exists():
        if not _is_samcache_h5(out_path):
            raise SamcacheError(f"{out} exists and is not a samcache export; samcache never replaces another file")
        if not overwrite:
            raise SamcacheError(f"{out} exists; pass {setting('overwrite')} to replace this earlier export")
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    lock_path = out_path.with_name(f".{out_path.name}.lock")
    lock = FileLock(lock_path, timeout=0)  # one export per OUT
    try:
        acquire_current(lock, lock_path)
    except Timeout:
        raise SamcacheError(f"{out} is being written by another samcache export; wait for it to finish") from None
    try:
        with h5py.File(tmp, "w") as h5:
            _write_attrs(h5, root.attrs)
            for name in chosen:
                with split_lock(cache, name, purpose="export"):  # no extraction grows it while it is copied
                    _export_split(cache, name, root[name], h5.create_group(name), COMPRESSIONS[compression])
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # ours: the lock keeps other exports of OUT away
        raise
    finally:
        if not out_path.exists():  # a failed first export leaves nothing beside OUT (acquire_current re-checks)
            lock_path.unlink(missing_ok=True)
        lock.release()
    return {"splits": chosen, "bytes": out_path.stat().st_size, "compression": compression}


def _export_split(cache: str, name: str, group, target: h5py.Group, filters: dict) -> None:
    """One split, as ``store.complete_rows`` sees it: ``n_images`` rows of every per-image array (a damaged
    chunk stops the export with one line: ``cache.damage``)."""
    attrs = dict(group.attrs)  # read under the split lock: n_images and the arrays agree
    n, _ = complete_rows(group)
    _write_attrs(target, {**attrs, "n_images": n})
    for array_name, array in sorted(group.arrays()):
        _export_array(target, array_name, CheckedArray(array, cache, name, array_name), filters, n)


def _is_samcache_h5(path: Path) -> bool:
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return "samcache_format" in h5.attrs
    except (OSError, ValueError):
        return False


def _write_attrs(node, attrs) -> None:
    for key, value in dict(attrs).items():
        node.attrs[key] = json.dumps(value)


def _export_array(target: h5py.Group, name: str, array: zarr.Array, filters: dict, n: int) -> None:
    """The first ``n`` rows (rows beyond ``n_images`` belong to an append not finished)."""
    string = array.dtype.kind in "OUT" or str(array.dtype).startswith("<U") or "str" in str(array.dtype).lower()
    n = min(n, array.shape[0])
    per_image = tuple(array.chunks) == (1, *array.shape[1:])
    chunks = (1, *array.shape[1:]) if per_image else (max(1, min(n, META_CHUNK)), *array.shape[1:])
    dataset = target.create_dataset(name, shape=(n, *array.shape[1:]), maxshape=(None, *array.shape[1:]), chunks=chunks,
                                    dtype=STRING if string else array.dtype, **filters)
    if n:
        _copy_rows(array, dataset, n, 1 if per_image else META_CHUNK, string)


def import_h5(path: str, cache: str) -> dict:
    """An exported HDF5 file back into a Zarr cache: every array, chunk, codec and attribute value as exported."""
    h5 = open_h5(path)
    if "samcache_format" not in h5.attrs:
        raise SamcacheError(f"{path} is not a samcache export (no samcache_format attribute)")
    target = Path(cache)
    kind = kind_of(cache)
    if not kind.writable:
        raise SamcacheError(f"CACHE {cache} names {kind.describe}; import writes a Zarr store (e.g. cache.zarr)")
    if not kind.atomic_rename:
        with cache_lock(cache):  # one import (or extract) creating this store at a time
            _import_in_place(h5, path, cache, kind)
        return {"splits": sorted(n for n, _ in h5.groups())}
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SamcacheError(f"{cache} exists and is not an empty directory; import into a new path")
    store = enclosing_store(target.parent)
    if store is not None:
        raise SamcacheError(f"CACHE {cache} lies inside the samcache cache {store}; choose another path")
    for data_root in {g.attrs.get("data_root") for _, g in h5.groups()} - {None}:
        check_location(cache, data_root)  # the same rule as extract: never inside (or around) the dataset
    staging = target.with_name(f".{target.name}.importing")
    shutil.rmtree(staging, ignore_errors=True)  # a killed import of ours
    try:
        _copy_groups(h5, zarr.open_group(str(staging), mode="w", attributes=h5.attrs))
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"splits": sorted(n for n, _ in h5.groups())}


IMPORTING = "samcache_importing"  # the only root attribute while an import writes a store it cannot rename


def _import_in_place(h5, path: str, cache: str, kind) -> None:
    """Where a store cannot be staged and renamed (an object store): the root says ``samcache_importing`` until
    every array is written, then gets the export's attributes in one put. Until then no command takes it for a
    cache; a re-run of a killed import finds its own marker and starts again."""
    if kind.exists(cache):
        try:
            attrs = dict(kind.open(cache, "r").attrs)
        except Exception:
            attrs = {}
        if set(attrs) != {IMPORTING}:
            raise SamcacheError(f"{cache} exists and is not empty; import into a new path")
        kind.remove_tree(cache)  # a killed import of ours: nothing else was ever there
    root = kind.open(cache, "w", attributes={IMPORTING: os.path.basename(path)})
    _copy_groups(h5, root)
    root.attrs.put(dict(h5.attrs))


def _copy_groups(h5, root) -> None:
    for name, group in h5.groups():
        split = root.create_group(name, attributes=group.attrs)
        codec = CODECS[group.attrs.get("codec", "zstd")]
        for array_name, array in group.arrays():
            per_image = tuple(array.dataset.chunks or ()) == (1, *array.shape[1:])
            chunks = (1, *array.shape[1:]) if per_image else (META_CHUNK, *array.shape[1:])
            dtype = str if array.is_str else array.dtype
            out = split.create_array(array_name, shape=array.shape, chunks=chunks, dtype=dtype,
                                     compressors=codec(), fill_value="" if array.is_str else 0)
            if array.shape[0]:
                _copy_rows(array, out, array.shape[0], 1 if per_image else META_CHUNK, array.is_str)

