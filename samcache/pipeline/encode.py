"""The encode-and-write step of Stage 1, shared by the single-process loop (``extract.run_local``) and the Dask
tasks (``dask_extract.encode_rows``): a batch of loaded images through the encoder, each image's features cast
to the cache's dtype and handed to a writer (the background ``ChunkWriter``, or a worker's direct writes)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from samcache.features.device import auto_batch_size


@dataclass
class Encoding:
    """What encodes: the family's backend, its encoder (on its device), the precision, the cache's dtype."""

    backend: object
    encoder: torch.nn.Module
    precision: str
    dtype: str  # "float16" or "float32": what the cache stores

    def batch_size(self, original_size, requested: int | None, device) -> int:
        """``requested``, or what fits on ``device`` for images of this size (measured)."""
        return requested or auto_batch_size(lambda n: self.backend.encode(
            self.encoder, *self.backend.dummy_batch(n, original_size), self.precision), device)


@dataclass
class LoadedBatch:
    """Images read and prepared (``Dataset.load_item``) for one encoder call, with their rows."""

    rows: list[int]
    images: torch.Tensor  # (B,3,S,S)
    input_sizes: torch.Tensor  # (B,2) int32
    labels: list[np.ndarray]
    instances: list[np.ndarray]

    @classmethod
    def of(cls, items: list[tuple[int, dict]]) -> "LoadedBatch":
        """(row, loaded item) pairs (none with an error) as one batch."""
        return cls([row for row, _ in items], torch.stack([it["image"] for _, it in items]),
                   torch.tensor([it["input_size"] for _, it in items], dtype=torch.int32),
                   [it["labels"] for _, it in items], [it["instances"] for _, it in items])


Write = Callable[[int, dict, np.ndarray, np.ndarray], None]  # (row, {name: features}, labels, instances)


def encode_and_write(encoding: Encoding, batch: LoadedBatch, write: Write) -> float:
    """Encode ``batch``, write every image; returns the encoder's seconds (the writes not counted)."""
    t0 = time.perf_counter()
    features = encoding.backend.encode(encoding.encoder, batch.images, batch.input_sizes, encoding.precision)
    out_dtype = torch.float16 if encoding.dtype == "float16" else torch.float32
    features = {name: value.to(out_dtype).cpu().numpy() for name, value in features.items()}
    seconds = time.perf_counter() - t0
    for k, row in enumerate(batch.rows):
        write(row, {name: value[k] for name, value in features.items()}, batch.labels[k], batch.instances[k])
    return seconds
