"""What extract refuses before it writes a byte into an existing cache: another model family or another dataset
beside the splits a cache holds, another data folder appended to a split, a codec the split does not use.

Each check reads only. ``precheck`` runs them before the encoder is built (a wrong --data or model type
costs no checkpoint load); ``writer.prepare_split`` runs the family and codec checks again under the
cache lock, where they are authoritative.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import zarr

from samcache.cache.store import is_samcache_store, open_root, split_state
from samcache.cache.stores import kind_of
from samcache.data.dataset import Dataset, ImageRecord
from samcache.data.datasets import dataset_of
from samcache.errors import SamcacheError, setting
from samcache.features.families import family_of

LABELS_COMPARED = 8  # done rows whose labels a moved dataset must reproduce exactly (spread over the split)


def check_family(root: zarr.Group, cache: str, split: str, model_type: str) -> None:
    """A cache holds one model family: another family's split may replace the only split a cache holds (with
    --rebuild), never sit beside other splits, whose features would no longer be readable as the cache's."""
    family = family_of(model_type).name
    held = root.attrs.get("family", "sam")
    others = [n for n, _ in root.groups() if n != split and split_state(root, n) in ("ready", "partial")]
    if held != family and others:
        raise SamcacheError(f"cache {cache} holds {held} features (split {', '.join(sorted(others))}) and a cache "
                            f"holds one model family; model type {model_type} is of family {family}: extract it into another {setting('cache')}, "
                            f"or remove those splits first (`samcache delete-split`)")


def check_dataset(root: zarr.Group, cache: str, split: str, dataset: Dataset, rebuild: bool = False) -> None:
    """A cache holds one dataset (its labels are read with its class table, an ACDC condition with its own): another
    dataset's split may replace the only split a cache holds (with --rebuild), never sit beside other splits."""
    held = dataset_of(dict(root.attrs))
    held_splits = [n for n, _ in root.groups() if (n != split or not rebuild)
                   and split_state(root, n) in ("ready", "partial")]
    if held != dataset and held_splits:
        raise SamcacheError(f"cache {cache} holds {held.domain} images (split {', '.join(sorted(held_splits))}) and a "
                            f"cache holds one dataset; extract {dataset.domain} into another {setting('cache')}, or "
                            f"remove those splits first (`samcache delete-split`)")


def check_codec(group: zarr.Group, cache: str, split: str, codec: str | None) -> None:
    """--codec chooses how a split is created; an existing split keeps its own (mixing would mislead)."""
    held = group.attrs.get("codec", "zstd")
    if codec is not None and codec != held:
        raise SamcacheError(f"split {split} of {cache} is stored with codec {held}; {setting('codec')} {codec} applies when a "
                            f"split is created: leave {setting('codec')} out to add to it, or pass {setting('rebuild')} to "
                            f"recompute it")


@dataclass(frozen=True)
class MovedData:
    """The split's images were found, identical, under a new data root."""

    split: str
    before: str
    now: str
    compared: int

    def note(self) -> str:
        return (f"note: split {self.split}'s data moved from {self.before} to {self.now} (labels of {self.compared} "
                f"cached image(s) compared equal); recorded the new place")


def check_same_dataset(group: zarr.Group, cache: str, split: str, data_root: str,
                       listed: dict[str, ImageRecord], dataset: Dataset) -> MovedData | None:
    """Refuse appending another dataset to a split: every encoded image must be listed under ``data_root``,
    and the labels of up to LABELS_COMPARED of them must equal the cached ones (so moved or copied data passes).
    ``listed``: the images of the split under ``data_root``, by id. None when the data root is unchanged."""
    recorded = str(group.attrs.get("data_root", ""))
    if not recorded or os.path.realpath(recorded) == os.path.realpath(data_root):
        return None
    n = int(group.attrs.get("n_images", 0))
    ids = [str(i) for i in group["image_ids"][:n].tolist()]
    done = np.flatnonzero(group["done"][:n])
    refuse = (f"split {split} of {cache} was extracted from {recorded}, and a split holds one dataset: use "
              f"{setting('data')} {recorded}, another {setting('split')} or {setting('cache')}, or {setting('rebuild')} to recompute the split from {data_root}")
    missing = [ids[r] for r in done if ids[r] not in listed]
    if missing:
        raise SamcacheError(f"{setting('data')} {data_root} lacks {len(missing)} of the split's {len(done)} cached image(s) "
                            f"(first: {missing[0]}); {refuse}")
    sample = done[np.unique(np.linspace(0, len(done) - 1, min(len(done), LABELS_COMPARED)).round().astype(int))] \
        if len(done) else []
    for row in sample:
        record = listed[ids[row]]
        h, w = (int(v) for v in group["original_sizes"][row])
        if not np.array_equal(dataset.read_labels(record.label_path), group["labels"][row][:h, :w]):
            raise SamcacheError(f"{setting('data')} {data_root} holds another {ids[row]} (its labels differ from the cached "
                                f"ones); {refuse}")
    return MovedData(split, recorded, data_root, len(sample))


def precheck(cache: str, split: str, model_type: str, codec: str | None, data_root: str,
             listed: list[ImageRecord], rebuild: bool, dataset: Dataset) -> MovedData | None:
    """Everything extract refuses about an existing cache, read-only, before the encoder is built."""
    if not is_samcache_store(cache) and kind_of(cache).on_this_machine:
        return None
    try:
        root = open_root(cache)
    except SamcacheError:
        return None  # a new remote store, or one that prepare_split will name precisely
    check_family(root, cache, split, model_type)
    check_dataset(root, cache, split, dataset, rebuild)
    if rebuild or split_state(root, split) != "ready":
        return None
    group = root[split]
    check_codec(group, cache, split, codec)
    return check_same_dataset(group, cache, split, data_root, {r.image_id: r for r in listed}, dataset)

