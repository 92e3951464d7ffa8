"""Create, resume, grow or rebuild a split, and write images into it.

The order of writes is what makes runs resumable and never half-written: a split group is
created together with its attributes, the driver registers image ids and sizes (``n_images``
is bumped only after they are stored), workers write an image's embedding, labels and
instances, and only then set ``done[row]``. LocalStore writes are atomic from zarr 3.1.3, so
a killed writer leaves whole chunks or none.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field

import numpy as np
import zarr

from samcache.cache.damage_notes import CheckedArray, drop_rows
from samcache.cache.schema import CODECS, DEFAULT_CODEC, Fingerprint, array_specs, per_image_arrays, root_attrs, split_attrs
from samcache.cache.store import (PARTIAL_MARK, check_location, delete_split_arrays, open_or_create_root, ready_splits,
                                  split_features, split_state)
from samcache.errors import SamcacheError, setting
from samcache.cache.split_checks import check_codec, check_dataset, check_family
from samcache.data.dataset import Dataset
from samcache.data.datasets import dataset_of, get_dataset
from samcache.features.families import backend_for, get_family


@dataclass
class PreparedSplit:
    group: zarr.Group
    image_ids: list[str]  # every row of the split, in row order
    pending_rows: list[int]  # rows to encode now: not done and present in the current listing
    stale_splits: list[str]  # other splits whose fingerprint differs from the cache's
    newly_dropped: list[str] = field(default_factory=list)  # never encoded, source image gone: no longer missing
    gone_done: list[str] = field(default_factory=list)  # encoded, source image gone: kept
    created: bool = False  # this run created the store
    moved: str | None = None  # a note when the split's data was found under a new root (split_checks)


def _check_root_fingerprint(root: zarr.Group, cache: str, split: str, fp: Fingerprint, rebuild: bool,
                            dataset: Dataset) -> None:
    held = Fingerprint.from_attrs(root.attrs["fingerprint"])
    if held == fp:
        return
    others = [n for n, _ in root.groups() if split_state(root, n) in ("ready", "partial")]
    if not rebuild and others:
        raise SamcacheError(f"cache {cache} holds {held.describe()} embeddings, this run asks for {fp.describe()}; "
                            f"pass {setting('rebuild')} to recompute split {split} (the other splits then need it too), "
                            f"or use another {setting('cache')}")
    root.attrs.update(root_attrs(fp, dataset))  # a cache whose every split was deleted takes the new weights


def _empty_group(root: zarr.Group, split: str) -> bool:
    """A group with no attributes and no members: nothing in it to lose, so extract may fill it."""
    node = root[split]
    return hasattr(node, "groups") and not dict(node.attrs) and not list(node.keys())


def _create_split(root: zarr.Group, split: str, fp: Fingerprint, extent: tuple[int, int], data_root: str,
                  codec: str, label_void: int) -> zarr.Group:
    """Group and attributes in one write, then the arrays (labels of ``extent``, the largest image, filled with the
    dataset's void label). A kill before the last array leaves a 'partial' split (``store.split_state``) that the
    next run recreates."""
    height, width = extent
    attrs = split_attrs(fp, data_root, height, width, 0, codec)
    features = dict(get_family(fp.family).features)
    if split in root:  # partial, or a samcache split being rebuilt: replace only what samcache made
        group = root[split]
        held = dict(group.attrs)
        old = split_features(dict(root.attrs), held)  # the arrays it holds now (maybe another family's)
        # 'partial' from here on, whatever is killed next (the fingerprint says which arrays are samcache's)
        group.attrs.put({PARTIAL_MARK: "create", **({"fingerprint": held["fingerprint"]} if "fingerprint" in held
                                                     else {})})
        delete_split_arrays(group, old)
        delete_split_arrays(group, features)
        group.attrs.put(attrs)
    else:
        group = root.create_group(split, attributes=attrs)
    for name, (shape, chunks, dtype) in array_specs(0, height, width, features, fp.embedding_dtype).items():
        group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, compressors=CODECS[codec](),
                           fill_value="" if dtype is str else label_void if name == "labels" else 0)
    return group


def _register(group: zarr.Group, known: int, new_ids: list[str], new_sizes: list[tuple[int, int]],
              input_size) -> None:
    """Append rows for ``new_ids``; ``n_images`` moves last so a killed append is redone cleanly.

    Shrinking (to ``known``) drops a killed append's chunks, and new rows read as the fill
    value, so ``done`` needs no write here.
    """
    n = known + len(new_ids)
    for _, arr in group.arrays():
        arr.resize((n, *arr.shape[1:]))
    group["image_ids"][known:n] = np.array(new_ids, dtype=object)
    group["original_sizes"][known:n] = np.array(new_sizes, np.int32)
    group["input_sizes"][known:n] = np.array([input_size(s) for s in new_sizes], np.int32)
    group.attrs["n_images"] = n


def _existing_split(root: zarr.Group, cache: str, split: str, fp: Fingerprint, rebuild: bool):
    """The split group to continue, or None when it must be (re)created."""
    if split_state(root, split) != "ready" or rebuild:
        return None
    group = root[split]
    split_fp = Fingerprint.from_attrs(group.attrs["fingerprint"])
    if split_fp != fp:
        raise SamcacheError(f"split {split} of {cache} holds {split_fp.describe()} embeddings, this run asks for "
                            f"{fp.describe()}; pass {setting('rebuild')} to recompute it")
    return group


def _check_fits(group: zarr.Group, cache: str, split: str, new: list[tuple[str, tuple[int, int]]]) -> None:
    """New rows must fit the split's label arrays, whose chunk (one image) has the extent they were created with."""
    height, width = int(group.attrs["height"]), int(group.attrs["width"])
    for image_id, (h, w) in new:
        if h > height or w > width:
            raise SamcacheError(f"{image_id} is {w}x{h} (WxH), larger than split {split} of {cache} holds "
                                f"({width}x{height}: its largest image when it was created); pass "
                                f"{setting('rebuild')} to recompute the split at the new size")


@dataclass(frozen=True)
class SplitPlan:
    """What one extraction asks of a split: rows for these images (of any sizes), encoded by these weights, from
    this dataset."""

    cache: str
    split: str
    image_ids: list[str]
    sizes: list[tuple[int, int]]  # (H, W) per image
    fingerprint: Fingerprint
    data_root: str
    codec: str | None = None  # a new split's codec (an existing split keeps its own)
    rebuild: bool = False
    present_ids: set[str] | None = None  # every image in the data folder now (image_ids may be a --limit prefix)
    dataset: Dataset | None = None  # whose images (default Cityscapes): the cache records it
    extent: tuple[int, int] | None = None  # (H, W) of a new split's label arrays (default: the largest of sizes),
    #                                        the largest image in the data folder's split, so that growing fits


def prepare_split(plan: SplitPlan) -> PreparedSplit:
    """Make the split hold a row for every listed image; say which rows still need encoding.

    Rows never encoded whose image is gone from ``plan.present_ids`` are marked dropped, and undropped if it comes
    back. Call with the cache and split locks held (``cache.locks``).
    """
    cache, split, image_ids, sizes, fp = plan.cache, plan.split, plan.image_ids, plan.sizes, plan.fingerprint
    data_root, codec, rebuild, present_ids = plan.data_root, plan.codec, plan.rebuild, plan.present_ids
    if codec is not None and codec not in CODECS:
        raise SamcacheError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
    check_location(cache, data_root)
    dataset = plan.dataset or get_dataset()
    root, created = open_or_create_root(cache, fp, dataset)
    if split_state(root, split) == "foreign" and not _empty_group(root, split):
        raise SamcacheError(f"{cache} holds a node '{split}' that samcache did not make; leaving it alone "
                            f"(use another {setting('split')} or {setting('cache')})")
    check_family(root, cache, split, fp.model_type)
    check_dataset(root, cache, split, dataset, rebuild)
    if dataset_of(dict(root.attrs)) != dataset:  # a cache whose every split was deleted takes the new dataset
        root.attrs.update(dataset.cache_attrs())
    _check_root_fingerprint(root, cache, split, fp, rebuild, dataset)
    group = _existing_split(root, cache, split, fp, rebuild)
    new_split = group is None  # (re)created: damage noted of the old one is gone with it
    if new_split:
        extent = plan.extent or tuple(int(max(s[k] for s in sizes)) for k in (0, 1))
        group = _create_split(root, split, fp, extent, str(data_root), codec or DEFAULT_CODEC, dataset.void_id)
    known = int(group.attrs["n_images"])
    checked = lambda name: CheckedArray(group[name], cache, split, name)  # noqa: E731 (damage: one line)
    held_ids = checked("image_ids")[:known].tolist() if known else []
    known_ids = set(held_ids)
    new = [(i, s) for i, s in zip(image_ids, sizes) if i not in known_ids]
    if not new_split:  # every refusal before the first write
        check_codec(group, cache, split, codec)
        _check_fits(group, cache, split, new)
        if group.attrs.get("data_root") != str(data_root):  # the same images, moved (split_checks): record where
            group.attrs["data_root"] = str(data_root)
    if new or group["done"].shape[0] != known:
        _register(group, known, [i for i, _ in new], [s for _, s in new], backend_for(fp.family).input_size)
    all_ids = held_ids + [i for i, _ in new]
    done = checked("done")[:]
    present = set(image_ids) if present_ids is None else present_ids
    dropped_before = set(group.attrs.get("dropped", []))
    dropped = {i for r, i in enumerate(all_ids) if not done[r] and i not in present}
    if dropped != dropped_before:
        group.attrs["dropped"] = sorted(dropped)
    not_done = {r for r in range(len(all_ids)) if not done[r]}  # damage noted there no longer matters
    drop_rows(cache, split, not_done, per_image_arrays(get_family(fp.family).features), everything=new_split)
    wanted = set(image_ids)
    pending = [r for r, i in enumerate(all_ids) if not done[r] and i in wanted]
    stale = [name for name in ready_splits(root) if name != split
             and Fingerprint.from_attrs(root[name].attrs["fingerprint"]) != fp]
    gone_done = [i for r, i in enumerate(all_ids) if done[r] and i not in present]
    return PreparedSplit(group, all_ids, pending, stale, sorted(dropped - dropped_before), gone_done, created)


def write_image(arrays, row: int, features: dict[str, np.ndarray], labels: np.ndarray, instances: np.ndarray) -> None:
    """One image's chunks, then its done flag: a reader never sees done without the data. Labels and instances
    smaller than the split's extent fill the top-left of their chunk, the rest the arrays' fill values (void, 0),
    written whole."""
    for name, value in features.items():
        arrays[name][row] = value
    for name, value in (("labels", labels), ("instances", instances)):
        arrays[name][row] = _padded(value, arrays[name].shape[1:], arrays[name].fill_value)
    arrays["done"][row] = True


def as_registered(item: dict, registered, image_path) -> dict:
    """A loaded item (``Dataset.load_item``) whose image is not the size its row was registered with (its header
    was unreadable then, or the file changed since) comes back as a one-line error: its row must not mix sizes."""
    if "error" in item:
        return item
    h, w = (int(v) for v in registered)
    got = item["labels"].shape
    if got != (h, w):
        return {"error": f"{image_path} is {got[1]}x{got[0]} (WxH) but its cache row was registered as {w}x{h}; "
                         f"recompute the split (rebuild) to take its new size"}
    return item


def _padded(plane: np.ndarray, extent: tuple[int, int], fill) -> np.ndarray:
    if plane.shape == tuple(extent):
        return plane
    out = np.full(extent, fill, plane.dtype)
    out[: plane.shape[0], : plane.shape[1]] = plane
    return out


def record_run(group: zarr.Group, run: dict) -> None:
    """Append this run's timing and device to the split's history (read by `samcache report`)."""
    group.attrs["runs"] = [*group.attrs.get("runs", []), run]


class ChunkWriter:
    """Compresses and stores images on a background thread so the encoder never waits on disk."""

    def __init__(self, group: zarr.Group, features: dict, max_pending: int = 8):
        self.arrays = {name: group[name] for name in per_image_arrays(features)}
        self.queue: queue.Queue = queue.Queue(max(max_pending, 1))
        self.written = 0
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, name="samcache-writer", daemon=True)
        self.thread.start()

    def put(self, row: int, features: dict[str, np.ndarray], labels: np.ndarray, instances: np.ndarray) -> None:
        if self.error is not None:
            raise SamcacheError(f"writing the cache failed: {self.error}")
        self.queue.put((row, features, labels, instances))

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:
                try:
                    write_image(self.arrays, *item)
                    self.written += 1
                except Exception as exc:  # reported by put() / close() on the main thread
                    self.error = exc

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise SamcacheError(f"writing the cache failed: {self.error}")
