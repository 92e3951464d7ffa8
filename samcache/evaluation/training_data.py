"""The head's training data in memory: preload a split on the GPU or in RAM (the ``preload`` setting's policy),
and iterate batches from memory or from a DataLoader over the cache.

The preload modes themselves are in the torch-free ``samcache.evaluation.preload_modes`` (the CLI's choices).
"""

from __future__ import annotations

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader

from samcache.cache.reader import CacheSplit
from samcache.evaluation.datasets import CacheHeadDataset, target_in_frame
from samcache.features.memory import usable_bytes
from samcache.procs import check_interrupt, stop_workers, worker_init_fn, workers_starting


def preload(dataset: CacheHeadDataset, device: torch.device, chunk: int = 64
            ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Whole split in memory: feature maps in their stored dtype, targets (or eval labels) as uint8."""
    split, rows, cs = dataset.split, np.asarray(dataset.rows), dataset.class_set
    features, targets = [[] for _ in dataset.feature_names], []
    for start in range(0, len(rows), chunk):  # chunked: original-size labels are 2 MB each
        part = rows[start: start + chunk]
        for store, name in zip(features, dataset.feature_names):
            store.append(torch.from_numpy(split.feature_arrays[name].oindex[part]).to(device))
        labels = split.labels.oindex[part]  # padded to the split's largest image with void
        if dataset.mode == "train":
            frames = [target_in_frame(split.crop(r, lab), cs, split.input_sizes[r], split.family.frame)
                      for lab, r in zip(labels, part)]
            targets.append(torch.from_numpy(np.stack(frames)).to(device))
        else:
            targets.append(torch.from_numpy(cs.to_index(labels)).to(device))
    return tuple(torch.cat(f) for f in features), torch.cat(targets)


def preload_bytes(split: CacheSplit, rows: list[int], mode: str, feature_names: tuple[str, ...]) -> int:
    per_image = sum(split.feature_arrays[n].dtype.itemsize * int(np.prod(split.feature_arrays[n].shape[1:]))
                    for n in feature_names)
    per_image += int(np.prod(split.family.frame)) if mode == "train" else int(np.prod(split.labels.shape[1:]))
    return per_image * len(rows)


def choose_preload(requested: str, nbytes: int, device: torch.device, gpu_fraction: float = 0.6,
                   ram_fraction: float = 0.5) -> str:
    """auto: on the GPU if it fits a share of usable GPU memory (a per-process cap counts), else RAM, else off."""
    if requested != "auto":
        return requested
    if device.type == "cuda" and nbytes < gpu_fraction * usable_bytes(device):
        return "gpu"
    available = psutil.virtual_memory().available  # MemFree ignores reclaimable page cache
    return "ram" if nbytes < ram_fraction * available else "off"


def iterate(dataset: CacheHeadDataset, preloaded: tuple | None, positions: list[int], batch_size: int,
            num_workers: int, device: torch.device):
    """Yield (rows, features tuple, targets) batches in ``positions`` order, from memory or via a DataLoader."""
    if preloaded is not None:
        features, targets = preloaded
        for start in range(0, len(positions), batch_size):
            check_interrupt()
            idx = torch.as_tensor(positions[start: start + batch_size], device=targets.device)
            yield ([dataset.rows[i] for i in idx.tolist()], tuple(f[idx].to(device) for f in features),
                   targets[idx].to(device))
        return
    loader = DataLoader(dataset, batch_size=batch_size, sampler=positions, num_workers=num_workers,
                        pin_memory=device.type == "cuda", worker_init_fn=worker_init_fn() if num_workers else None)
    with workers_starting():
        batches = iter(loader)
    try:
        for rows, features, targets in batches:
            check_interrupt()
            yield (rows.tolist(), tuple(f.to(device, non_blocking=True) for f in features),
                   targets.to(device, non_blocking=True))
    finally:
        stop_workers(batches)
