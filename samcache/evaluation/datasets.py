"""torch Datasets over a cache split: the head's (features, target) items, and per-image prompts and objects.

Nothing here opens a PNG or touches the image encoder: embeddings and labels come from Zarr.
Targets live in the family's input frame (1024x1024 for SAM 1 and 2.1): class indices resized
(nearest) to (h, w) like the image was, then padded with IGNORE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from samcache.cache.reader import CacheSplit, open_cache
from samcache.data.labels import IGNORE, ClassSet, get_class_set


def target_in_frame(label_ids: np.ndarray, class_set: ClassSet, input_size, frame: tuple[int, int]) -> np.ndarray:
    """(H, W) labelIds -> ``frame`` (h_f, w_f) uint8 class indices, nearest-resized to (h, w), IGNORE-padded."""
    (big_h, big_w), (h, w) = label_ids.shape, tuple(int(v) for v in input_size)
    rows = np.minimum(((np.arange(h) + 0.5) * big_h / h).astype(np.int64), big_h - 1)  # pixel centres
    cols = np.minimum(((np.arange(w) + 0.5) * big_w / w).astype(np.int64), big_w - 1)
    frame = np.full(tuple(frame), IGNORE, np.uint8)
    frame[:h, :w] = class_set.to_index(label_ids[rows[:, None], cols[None, :]])  # gather, then map
    return frame


class _SplitDataset(Dataset):
    """Rows of one cache split; each DataLoader worker opens its own handle to the store."""

    def __init__(self, cache: str, split: str, rows: list[int] | None = None):
        self.cache, self.split_name = str(cache), split
        self._split: CacheSplit | None = None
        self.rows = rows if rows is not None else self.split.require_complete()

    @property
    def split(self) -> CacheSplit:
        if self._split is None or self._pid != os.getpid():
            self._split, self._pid = open_cache(self.cache).split(self.split_name), os.getpid()
        return self._split

    def __getstate__(self):
        return {**self.__dict__, "_split": None}

    def __len__(self) -> int:
        return len(self.rows)


class CacheHeadDataset(_SplitDataset):
    """Items ``(row, features, target)`` of one split: ``features`` a tuple of (C,h,w) maps in the stored
    dtype (default: the family's main 64x64 map only), ``target`` uint8 (h_f, w_f) in the family's input frame.

    ``mode="eval"`` yields the class-index map at original resolution instead of the frame target, padded to the
    split's largest image with IGNORE (a split of mixed sizes still stacks; ``heads.evaluate`` crops it).
    """

    def __init__(self, cache: str, split: str, class_set: ClassSet | str = "seed5", rows: list[int] | None = None,
                 mode: str = "train", features: tuple[str, ...] | None = None):
        if mode not in ("train", "eval"):
            raise ValueError(f"mode must be 'train' or 'eval', not {mode!r}")
        self.mode = mode
        super().__init__(cache, split, rows)
        self.class_set = get_class_set(class_set, self.split.dataset)  # the split's labels, the set's indices
        self.feature_names = tuple(features or (self.split.main_feature,))

    def __getitem__(self, i: int):
        row = self.rows[i]
        split = self.split
        # in the stored dtype (cast on the device: half the IPC for float16)
        features = tuple(torch.from_numpy(split.feature_arrays[name][row]) for name in self.feature_names)
        return self._item(row, features, split.labels[row])

    def __getitems__(self, indices: list[int]) -> list:
        """A batch in one read per array where the store gains from reads in flight (an object store: its chunks
        are fetched concurrently); elsewhere item by item (the DataLoader's own path)."""
        if not self.split.read_ahead:
            return [self[i] for i in indices]
        rows = [self.rows[i] for i in indices]
        unique = sorted(set(rows))
        at = {row: k for k, row in enumerate(unique)}
        features = {name: self.split.feature_arrays[name][unique] for name in self.feature_names}
        labels = self.split.labels[unique]
        return [self._item(row, tuple(torch.from_numpy(features[name][at[row]]) for name in self.feature_names),
                           labels[at[row]]) for row in rows]

    def _item(self, row: int, features: tuple, labels: np.ndarray):
        split = self.split
        if self.mode == "eval":
            return row, features, torch.from_numpy(self.class_set.to_index(labels))
        target = target_in_frame(split.crop(row, labels), self.class_set, split.input_sizes[row], split.family.frame)
        return row, features, torch.from_numpy(target)


@dataclass
class PromptItem:
    row: int
    features: dict  # name -> (C, h, w) in the stored dtype: what the family's decoder reads
    class_map: np.ndarray  # (H, W) uint8 class indices, IGNORE for void
    prompts: list  # [(class_index, evaluation.prompts.Prompt)]


class PromptDataset(_SplitDataset):
    """One item per image with its prompts, sampled in DataLoader workers (distance transforms are the
    slow part) from a generator seeded by (seed, row), so the order workers run in changes nothing."""

    def __init__(self, cache: str, split: str, class_set: ClassSet | str, sample: Callable, seed: int,
                 rows: list[int] | None = None):
        self.sample, self.seed = sample, seed
        super().__init__(cache, split, rows)
        self.class_set = get_class_set(class_set, self.split.dataset)

    def __getitem__(self, i: int) -> PromptItem:
        row, split = self.rows[i], self.split
        class_map = self.class_set.to_index(split.crop(row, split.labels[row]))
        instances = split.crop(row, split.instances[row]).astype(np.int32)
        prompts = self.sample(class_map, instances, np.random.default_rng([self.seed, row]))
        return PromptItem(row, split.features(row), class_map, prompts)


@dataclass
class ObjectItem:
    row: int
    features: dict  # name -> (C, h, w) in the stored dtype
    valid: np.ndarray  # (H, W) bool: pixels that are scored (not void)
    objects: list  # [evaluation.clicks.ClickObject]
    first_clicks: list  # [(x, y)] click 1 of each object


class ObjectDataset(_SplitDataset):
    """One item per image with its objects and their first clicks, computed in DataLoader workers
    (connected components and distance transforms) from a generator seeded by (seed, row)."""

    def __init__(self, cache: str, split: str, class_set: ClassSet | str, find_objects: Callable,
                 first_click: Callable, seed: int, rows: list[int] | None = None):
        self.find_objects, self.first_click, self.seed = find_objects, first_click, seed
        super().__init__(cache, split, rows)
        self.class_set = get_class_set(class_set, self.split.dataset)

    def __getitem__(self, i: int) -> ObjectItem:
        row, split = self.rows[i], self.split
        labels = split.crop(row, split.labels[row])
        instances = split.crop(row, split.instances[row]).astype(np.int32)
        objects = self.find_objects(labels, instances, self.class_set)
        rng = np.random.default_rng([self.seed, row])
        first = [self.first_click(o.mask, rng=rng) for o in objects]
        return ObjectItem(row, split.features(row), self.class_set.to_index(labels) != IGNORE, objects, first)
