"""Stage 1: run the image encoder once per image and write embeddings + labels to the cache.

DataLoader workers decode PNGs and resize while the encoder runs; a background writer
compresses and stores chunks; ``done[i]`` is set only after image i is fully written, so a
killed run resumes where it stopped. Dask scale-out lives in ``dask_extract``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from samcache.cache.reader import CacheSplit
from samcache.cache.schema import DEFAULT_CODEC, EMBEDDING_DTYPES, Fingerprint
from samcache.cache.writer import ChunkWriter, PreparedSplit, prepare_split, record_run
from samcache.data.cityscapes import ImageRecord, image_size, list_images, read_image, read_instance_ids, read_label_ids
from samcache.errors import SamcacheError
from samcache.features.encoder import PRECISIONS, describe_device, encode, resolve_device
from samcache.features.models import MODEL_TYPES, build_sam, check_weights
from samcache.features.preprocess import resize_and_pad_uint8
from samcache.pipeline.config import now_iso


@dataclass
class ExtractConfig:
    data: str = "data/cityscapes"
    cache: str = "cache/cityscapes.zarr"
    split: str = "train"
    model_type: str = "vit_h"
    checkpoint: str | None = None
    seed: int = 0  # weights seed for the tiny model
    dtype: str = "float16"
    batch_size: int = 4
    device: str = "auto"
    num_workers: int = 2
    precision: str = "fp32"
    codec: str = DEFAULT_CODEC
    rebuild: bool = False
    limit: int | None = None
    dask: str | None = None  # "local:N" or "tcp://host:8786"
    resources: str | None = None  # e.g. "GPU=1": pin tasks to workers with these resources
    retries: int = 2

    def validate(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise SamcacheError(f"unknown model type {self.model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
        if self.dtype not in EMBEDDING_DTYPES:
            raise SamcacheError(f"--dtype must be one of {', '.join(EMBEDDING_DTYPES)}")
        if self.precision not in PRECISIONS:
            raise SamcacheError(f"--precision must be one of {', '.join(PRECISIONS)}")
        if self.batch_size < 1 or self.num_workers < 0:
            raise SamcacheError("--batch-size must be >= 1 and --num-workers >= 0")


@dataclass
class ExtractResult:
    split: str
    images: int  # encoded in this run
    seconds: float
    bytes_on_disk: int
    n_total: int
    n_done: int
    encoder_seconds_per_image: float | None
    device: str
    failed: list[str] = field(default_factory=list)
    stale_splits: list[str] = field(default_factory=list)

    @property
    def img_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self) -> str:
        per_image = self.bytes_on_disk / max(self.n_done, 1)
        return (f"{self.split}: {self.images} images in {self.seconds:.1f} s ({self.img_per_s:.2f} img/s); "
                f"{self.n_done}/{self.n_total} done; {self.bytes_on_disk / 2**20:.1f} MiB on disk, "
                f"{per_image / 2**20:.2f} MiB/image")


def load_item(record: ImageRecord) -> dict:
    """Decode + preprocess one image and read its labels; errors come back as data, not raised."""
    try:
        image = read_image(record.image_path)
        labels = read_label_ids(record.label_path)
        instances = read_instance_ids(record.instance_path)
        if labels.shape != image.shape[:2] or instances.shape != image.shape[:2]:
            raise SamcacheError(f"{record.label_path} is {labels.shape}, image is {image.shape[:2]}")
        padded, hw = resize_and_pad_uint8(image)
        return {"image": padded, "input_size": hw, "labels": labels, "instances": instances.astype(np.uint16)}
    except SamcacheError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # anything else a broken file can raise inside a worker
        return {"error": f"{record.image_path}: {type(exc).__name__}: {exc}"}


class _RowDataset(Dataset):
    def __init__(self, rows: list[int], records: list[ImageRecord]):
        self.rows, self.records = rows, records

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"row": self.rows[i], **load_item(self.records[i])}


def collate_items(items: list[dict]) -> dict:
    ok = [it for it in items if "error" not in it]
    return {
        "rows": [it["row"] for it in ok],
        "images": torch.stack([it["image"] for it in ok]) if ok else None,
        "input_sizes": torch.tensor([it["input_size"] for it in ok], dtype=torch.int32),
        "labels": [it["labels"] for it in ok],
        "instances": [it["instances"] for it in ok],
        "errors": [it["error"] for it in items if "error" in it],
    }


def plan(cfg: ExtractConfig, weights) -> tuple[PreparedSplit, dict[str, ImageRecord], Fingerprint]:
    """List the images, then create/resume/grow the split; nothing is encoded yet."""
    records = list_images(cfg.data, cfg.split)
    if cfg.limit is not None:
        records = records[: cfg.limit]
    sizes = [image_size(r.image_path) for r in records]
    fingerprint = Fingerprint.make(cfg.model_type, weights, cfg.dtype, cfg.precision)
    prepared = prepare_split(cfg.cache, cfg.split, [r.image_id for r in records], sizes, fingerprint,
                             str(cfg.data), cfg.codec, cfg.rebuild)
    return prepared, {r.image_id: r for r in records}, fingerprint


def run_local(cfg: ExtractConfig, sam, prepared: PreparedSplit, by_id: dict[str, ImageRecord],
              device: torch.device, progress: bool = True) -> tuple[int, float, list[str]]:
    """Encode the pending rows on this machine; returns (images written, encoder seconds, errors)."""
    rows = prepared.pending_rows
    dataset = _RowDataset(rows, [by_id[prepared.image_ids[r]] for r in rows])
    loader = DataLoader(dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                        collate_fn=collate_items, pin_memory=device.type == "cuda",
                        persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None)
    out_dtype = np.dtype(cfg.dtype)
    writer = ChunkWriter(prepared.group, max_pending=4 * cfg.batch_size)
    errors: list[str] = []
    encoder_seconds = 0.0
    bar = tqdm(total=len(rows), unit="img", desc=f"extract {cfg.split}", disable=not progress)
    try:
        for batch in loader:
            errors.extend(batch["errors"])
            if batch["images"] is not None:
                t0 = time.perf_counter()
                emb = encode(sam.image_encoder, batch["images"], batch["input_sizes"], cfg.precision)
                emb = emb.to(torch.float16 if out_dtype == np.float16 else torch.float32).cpu().numpy()
                encoder_seconds += time.perf_counter() - t0
                for k, row in enumerate(batch["rows"]):
                    writer.put(row, emb[k], batch["labels"][k], batch["instances"][k])
            bar.update(len(batch["rows"]) + len(batch["errors"]))
            bar.set_postfix(failed=len(errors), refresh=False)
    finally:
        bar.close()
        writer.close()  # flush queued images even when interrupted
    return writer.written, encoder_seconds, errors


def extract(cfg: ExtractConfig, progress: bool = True) -> ExtractResult:
    """Encode every image of ``cfg.split`` that the cache does not hold yet."""
    cfg.validate()
    device = resolve_device(cfg.device)
    if cfg.dask:  # the workers build the model; the driver only checks and identifies the weights
        sam, weights = None, check_weights(cfg.model_type, cfg.checkpoint, cfg.seed)
    else:
        sam, weights = build_sam(cfg.model_type, cfg.checkpoint, cfg.seed)
    prepared, by_id, fingerprint = plan(cfg, weights)
    started, t0 = now_iso(), time.perf_counter()
    written, enc_s, errors = 0, 0.0, []
    if prepared.pending_rows:
        if cfg.dask:
            from samcache.pipeline.dask_extract import run_dask

            written, enc_s, errors = run_dask(cfg, prepared, weights, progress=progress)
            device_name = f"dask:{cfg.dask}"
        else:
            sam = sam.to(device)
            written, enc_s, errors = run_local(cfg, sam, prepared, by_id, device, progress)
            device_name = describe_device(device)
    else:
        device_name = describe_device(device)
    seconds = time.perf_counter() - t0
    split = CacheSplit(cfg.split, prepared.group, cfg.cache)
    n_done = int(split.done_mask().sum())
    result = ExtractResult(cfg.split, written, seconds, split.nbytes_stored(), len(split), n_done,
                           enc_s / written if written else None, device_name, errors, prepared.stale_splits)
    if written:
        record_run(prepared.group, {"started": started, "images": written, "seconds": round(seconds, 3),
                                    "encoder_seconds_per_image": result.encoder_seconds_per_image,
                                    "device": device_name, "random_weights": weights.random,
                                    "config": asdict(cfg)})
    return result
