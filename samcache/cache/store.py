"""Opening and creating the store, and telling samcache's own nodes from anything else.

Trust rules enforced here: a cache never lives inside (or on top of) the dataset; an existing
directory is adopted only if it is a samcache store or empty; a group is treated as a split
only if samcache wrote its attributes; deletion touches only arrays samcache made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from samcache.cache.stores import kind_of
from samcache.cache.stores.base import real_path
from samcache.cache.schema import (FORMAT_VERSION, READABLE_FORMATS, Fingerprint, feature_shapes, root_attrs,
                                   split_arrays)
from samcache.data.datasets import get_dataset
from samcache.errors import SamcacheError, setting


def open_root(cache: str, mode: str = "r") -> zarr.Group:
    """An existing samcache store (any kind: ``stores/``), or a one-line error for anything else."""
    kind = kind_of(cache)
    if not kind.exists(str(cache)):
        raise SamcacheError(f"no cache at {cache}")
    try:
        root = kind.open(str(cache), mode)
    except SamcacheError:
        raise
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise SamcacheError(f"no cache at {cache}") from None
    except PermissionError as exc:
        raise SamcacheError(f"cannot open {cache}: {exc.strerror or exc}") from None
    except Exception as exc:  # an array, a file, a foreign store
        raise SamcacheError(f"{cache} is not a Zarr group ({type(exc).__name__}: {exc})") from None
    return _checked(root, cache, mode)


def _checked(root, cache: str, mode: str):
    fmt = root.attrs.get("samcache_format")
    if fmt is None or "fingerprint" not in root.attrs:
        raise SamcacheError(f"{cache} is {kind_of(cache).describe} but not a samcache cache (no samcache_format attribute)")
    if fmt not in READABLE_FORMATS:
        raise SamcacheError(f"{cache} has samcache_format {fmt}; this samcache reads formats "
                            f"{', '.join(map(str, READABLE_FORMATS))}")
    if mode != "r" and fmt != FORMAT_VERSION:
        raise SamcacheError(f"{cache} is a format-{fmt} cache: samcache reads it as it is, but writes only format "
                            f"{FORMAT_VERSION}; run `samcache upgrade --cache {cache}` first "
                            f"(rewrites attributes only)")
    return root


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_location(cache: str, data_root: str) -> None:
    """Refuse a cache path that could destroy the dataset or adopt a folder samcache did not make."""
    kind = kind_of(cache)
    if not kind.on_this_machine:
        return
    path, data = real_path(cache), real_path(data_root)
    if _inside(path, data):
        raise SamcacheError(f"{setting('cache')} {cache} lies inside the data root {data_root}; put the cache elsewhere "
                            f"(e.g. cache/cityscapes_vit_h.zarr)")
    if _inside(data, path):
        raise SamcacheError(f"the data root {data_root} lies inside {setting('cache')} {cache}; choose another cache path")
    if path.is_file():
        raise SamcacheError(f"{setting('cache')} {cache} is a file, not a cache directory")
    if (path / "zarr.json").is_file():
        kind.check_metadata(str(path))  # a damaged store is named as such, not taken for a foreign folder
    if path.is_dir() and any(path.iterdir()) and not is_samcache_store(path):
        raise SamcacheError(f"{setting('cache')} {cache} is a non-empty directory that is not a samcache cache; "
                            f"choose a new or empty path")


def enclosing_store(path: str | Path) -> Path | None:
    """The samcache store that ``path`` lies in (or is), if any: files written there would be foreign to it."""
    real = real_path(str(path))
    for folder in (real, *real.parents):
        if (folder / "zarr.json").is_file() and is_samcache_store(folder):
            return folder
    return None


def is_samcache_store(path: str | Path) -> bool:
    try:
        attrs = kind_of(str(path)).open(str(path), "r").attrs
    except Exception:
        return False
    return "samcache_format" in attrs


def open_or_create_root(cache: str, fp: Fingerprint, dataset=None) -> tuple[zarr.Group, bool]:
    """The store for writing, after ``check_location``; a new one gets its attributes in one file write."""
    if is_samcache_store(cache):
        return open_root(cache, mode="r+"), False
    kind = kind_of(cache)
    if not kind.on_this_machine and kind.exists(str(cache)):  # a local folder: check_location looked
        raise SamcacheError(f"{setting('cache')} {cache} holds objects but is not a samcache cache; samcache never "
                            f"writes among what it did not create: choose a new prefix")
    try:
        root = kind.open(str(cache), "a", attributes=root_attrs(fp, dataset))
    except PermissionError as exc:
        raise SamcacheError(f"cannot create the cache {cache}: {exc.strerror or exc}") from None
    return root, True


PARTIAL_MARK = "samcache_partial"  # a split group's attribute while samcache creates, rebuilds or deletes it


def split_features(root_attrs_: dict, split_attrs_: dict) -> dict[str, tuple[int, int, int]]:
    """name -> (C, h, w) of a split's feature arrays: its own family's (a split may be STALE, made by another
    family than the cache's current one), else the cache's."""
    family = (split_attrs_.get("fingerprint") or {}).get("family")
    if family and family != root_attrs_.get("family", "sam"):
        from samcache.features.families import FAMILIES  # no torch: the descriptors are data

        if family in FAMILIES:
            return dict(FAMILIES[family].features)
    return feature_shapes(root_attrs_)


def split_state(root: zarr.Group, name: str) -> str:
    """'absent', 'ready' (attributes and every array), 'partial' (samcache's creation, rebuild or deletion
    cut short), or 'foreign' (not samcache's: left alone)."""
    if name not in root:
        return "absent"
    node = root[name]
    if not hasattr(node, "groups"):  # an array, not a group (zarr or the HDF5 adapter)
        return "foreign"
    members = set(node.keys())
    attrs = dict(node.attrs)
    expected = set(split_arrays(split_features(dict(root.attrs), attrs)))
    if "fingerprint" in attrs and PARTIAL_MARK not in attrs and members >= expected:
        return "ready"
    if members <= expected and (PARTIAL_MARK in attrs or ("fingerprint" in attrs and not attrs.get("n_images"))
                                or (not attrs and members)):  # the last: a rebuild of samcache < 0.5 cut short
        return "partial"
    return "foreign"


def partial_kind(group) -> str:
    """What a 'partial' split was in the middle of: 'delete' or 'create'."""
    return "delete" if dict(group.attrs).get(PARTIAL_MARK) == "delete" else "create"


def complete_rows(group, done=None) -> tuple[int, np.ndarray]:
    """The one rule for what a split holds: ``(n, done)`` with ``n = n_images`` and ``done`` its first n flags.

    A row is complete when it is below ``n_images`` and its ``done`` flag is set (set only after the
    row's data, see writer.write_image). Arrays may be longer than ``n_images`` after a killed append;
    those rows do not exist yet. Readers of a split that may be growing take the split lock (export) or
    check that no extraction holds it (Stage 2), so the snapshot cannot change under them. ``done``: the
    split's ``done`` array as the caller reads it (``cache.damage.CheckedArray``).
    """
    n = int(dict(group.attrs).get("n_images", 0))
    return n, (group["done"] if done is None else done)[:n]


def ready_splits(root: zarr.Group) -> list[str]:
    return sorted(name for name, _ in root.groups() if split_state(root, name) == "ready")


def delete_split_arrays(group: zarr.Group, features: dict) -> None:
    """Remove the arrays samcache made in a split group, and nothing else."""
    for name in split_arrays(features):
        if name in group:
            del group[name]


def delete_split(root: zarr.Group, name: str) -> None:
    """Remove a samcache split: marked 'partial' (deletion) first, then its arrays, then the group itself if
    nothing else is left in it. A kill at any point leaves a 'partial' split that running this again removes.
    Call with the cache and split locks held."""
    group = root[name]
    attrs = dict(group.attrs)
    features = split_features(dict(root.attrs), attrs)
    group.attrs.put({PARTIAL_MARK: "delete", **({"fingerprint": attrs["fingerprint"]} if "fingerprint" in attrs else {})})
    delete_split_arrays(group, features)
    if not list(group.keys()):
        del root[name]


def upgrade(cache: str) -> list[str]:
    """Format 1 or 2 -> 3 in place: attributes only, no array is rewritten (format 3 reads a split of one image
    size as it is; SAM 1's ``embeddings`` keeps its name and data). Format 1 splits' fingerprints get
    ``family: sam``; the root gets the format, the family's attributes (format 1) and the dataset's (what every
    cache before format 3 holds: Cityscapes).

    Splits first, the root's format last, so a killed upgrade is completed by running it again.
    Returns what was rewritten, one phrase each.
    """
    if not kind_of(cache).writable:
        raise SamcacheError(f"{cache} is {kind_of(cache).as_cache}, which samcache reads only; `samcache import` it into a "
                            f"Zarr store (which reads older formats as they are) and upgrade that")
    root = open_root(cache, mode="r")
    if root.attrs["samcache_format"] == FORMAT_VERSION:
        return []
    root = kind_of(cache).open(str(cache), "r+")
    old = int(root.attrs["samcache_format"])
    changed = []
    for name in sorted(n for n, _ in root.groups()):
        group = root[name]
        if "fingerprint" in group.attrs and "family" not in group.attrs["fingerprint"]:
            group.attrs["fingerprint"] = {**group.attrs["fingerprint"], "family": "sam"}
            changed.append(f"split {name}'s fingerprint (family sam)")
    fp = Fingerprint.from_attrs({"family": "sam", **root.attrs["fingerprint"]})
    # Cityscapes: the only dataset before format 3; format 1 also lacks the family's attributes
    update = root_attrs(fp) if old == 1 else {"samcache_format": FORMAT_VERSION, **get_dataset().cache_attrs()}
    root.attrs.put({**dict(root.attrs), **update})
    what = "the family's attributes, " if old == 1 else ""
    return [*changed, f"the root's samcache_format {old} -> {FORMAT_VERSION}, {what}dataset cityscapes"]
