"""What a head trains on: the cache's train and val splits, their datasets, and the preload that holds them
(GPU, RAM, or streamed by DataLoader workers); a resume's checks run before anything is preloaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from samcache.cache.reader import CacheSplit, open_cache
from samcache.errors import SamcacheError
from samcache.evaluation.datasets import CacheHeadDataset
from samcache.evaluation.training_data import choose_preload, preload, preload_bytes
from samcache.features.head import head_features
from samcache.pipeline.configs import HeadConfig
from samcache.pipeline.provenance import provenance


@dataclass
class HeadData:
    """What training reads: the train split (its fingerprint goes into checkpoints), both datasets, and the
    preloaded tensors (None when streamed through DataLoader workers); ``train_info``: what every epoch and
    checkpoint records of the train set (split, images used, images the split holds, their ids)."""

    train: CacheSplit
    train_ds: CacheHeadDataset
    val_ds: CacheHeadDataset
    train_mem: tuple | None
    val_mem: tuple | None
    preload: str
    train_info: dict = field(default_factory=dict)

    def epoch_columns(self) -> dict:
        """The train set of one epoch, as metrics.csv columns."""
        return {"train_" + k: self.train_info[k] for k in ("split", "images", "split_images")}



def load_data(cfg: HeadConfig, class_set, device,
               check: Callable[[CacheSplit, dict], None] | None = None) -> HeadData:
    """``check(train split, train_info)``: a resume's checks, before anything is preloaded."""
    cache = open_cache(cfg.cache)
    train, val = cache.split(cfg.train_split), cache.split(cfg.val_split)
    if not train.fingerprint.same_model(val.fingerprint):
        raise SamcacheError(f"splits {train.name} ({train.fingerprint.describe()}) and {val.name} "
                            f"({val.fingerprint.describe()}) of {cfg.cache} come from different models")
    train_rows = train.require_complete()[: cfg.limit]
    ids = train.image_ids
    info = {"split": train.name, "dataset": train.dataset.name, "condition": train.dataset.condition,
            "images": len(train_rows),
            "split_images": provenance(train, len(train_rows), False)["split_images"],
            "image_ids": [ids[r] for r in train_rows]}
    if check is not None:
        check(train, info)
    names = head_features(cfg.head, cache.feature_shapes, cache.main_feature)
    train_ds = CacheHeadDataset(cfg.cache, cfg.train_split, class_set, train_rows, mode="train", features=names)
    val_ds = CacheHeadDataset(cfg.cache, cfg.val_split, class_set, mode="eval", features=names)
    nbytes = preload_bytes(train, train_rows, "train", names) + preload_bytes(val, val_ds.rows, "eval", names)
    mode = choose_preload(cfg.preload, nbytes, device)
    if mode == "gpu" and device.type != "cuda":
        raise SamcacheError("preload 'gpu' needs a CUDA device")
    where = device if mode == "gpu" else torch.device("cpu")
    train_mem = preload(train_ds, where) if mode != "off" else None
    val_mem = preload(val_ds, where) if mode != "off" else None
    return HeadData(train, train_ds, val_ds, train_mem, val_mem, mode, info)
