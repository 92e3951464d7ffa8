"""Stage 1: run the image encoder once per image and write embeddings + labels to the cache.

DataLoader workers decode PNGs and resize while the encoder runs; a background writer
compresses and stores chunks; ``done[i]`` is set only after image i is fully written, so a
killed run resumes where it stopped. One extraction per split at a time (a file lock);
different splits of one cache run in parallel. Dask scale-out lives in ``dask_extract``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from samcache.cache.damage_notes import describe_record, read_record
from samcache.cache.locks import cache_lock, split_lock
from samcache.cache.reader import CacheSplit
from samcache.cache.schema import Fingerprint
from samcache.cache.split_checks import precheck
from samcache.cache.store import check_location
from samcache.cache.stores import kind_of
from samcache.cache.writer import ChunkWriter, PreparedSplit, SplitPlan, as_registered, prepare_split, record_run
from samcache.data.dataset import Dataset, ImageRecord
from samcache.data.files import image_size
from samcache.data.datasets import get_dataset
from samcache.errors import SamcacheError
from samcache.features.families import backend_for
from samcache.features.device import configure_matmul, describe_device, maybe_compile, resolve_device, resolve_precision
from samcache.messages import count
from samcache.pipeline.config import now_iso
from samcache.pipeline.configs import ExtractConfig
from samcache.pipeline.encode import Encoding, LoadedBatch, encode_and_write
from samcache.procs import check_interrupt, stop_workers, worker_init_fn


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
    dropped: list[str] = field(default_factory=list)  # never encoded, image gone from the data: no longer expected
    gone_done: list[str] = field(default_factory=list)  # encoded, image gone from the data: kept
    moved: str | None = None  # a note when the split's images were found, identical, under a new --data
    damage: str | None = None  # damaged done rows that a reader or verify noted (cache.damage)

    @property
    def img_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self) -> str:
        per_image = self.bytes_on_disk / max(self.n_done, 1)
        return (f"{self.split}: {count(self.images, 'image')} in {self.seconds:.1f} s ({self.img_per_s:.2f} img/s); "
                f"{self.n_done}/{self.n_total} done; {self.bytes_on_disk / 2**20:.1f} MiB on disk, "
                f"{per_image / 2**20:.2f} MiB/image")


class _RowDataset(TorchDataset):
    def __init__(self, rows: list[int], records: list[ImageRecord], prepare, dataset: Dataset, sizes):
        self.rows, self.records, self.prepare, self.dataset, self.sizes = rows, records, prepare, dataset, sizes

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        item = self.dataset.load_item(self.records[i], self.prepare)
        return {"row": self.rows[i], **as_registered(item, self.sizes[i], self.records[i].image_path)}


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


def plan(cfg: ExtractConfig, weights, precision: str
         ) -> tuple[PreparedSplit, dict[str, ImageRecord]]:
    """List the images, then create/resume/grow the split; nothing is encoded yet.

    Returns the prepared split and the records by id. Every listed image's header is read (a new split's label
    arrays take the largest size, so that the rest of the split fits when it grows past --limit). Images whose
    header cannot be read still get a row (of the largest size): encoding them fails and names them, the
    split stays incomplete, and Stage 2 refuses it until they are fixed (then encoded) or removed
    (then dropped).
    """
    dataset = dataset_of_config(cfg)
    listed = dataset.list_labelled(cfg.data, cfg.split)
    records = listed[: cfg.limit] if cfg.limit is not None else listed
    every, unreadable = {}, []
    for record in listed:
        try:
            every[record.image_id] = image_size(record.image_path)
        except SamcacheError as exc:
            every[record.image_id] = None
            unreadable.append(str(exc))
    readable = [size for size in every.values() if size is not None]
    if not readable:
        raise SamcacheError(f"no readable image in split {cfg.split} of {cfg.data}; first: {unreadable[0]}")
    extent = (max(h for h, _ in readable), max(w for _, w in readable))
    sizes = [every[r.image_id] or extent for r in records]  # encoding checks the real one (writer.as_registered)
    fingerprint = Fingerprint.make(cfg.model_type, weights, cfg.dtype, precision)
    # again under the split lock (extract checked before building the encoder): another dataset is refused
    moved = precheck(cfg.cache, cfg.split, cfg.model_type, cfg.codec, os.path.abspath(cfg.data), listed, cfg.rebuild,
                     dataset)
    existed = True
    try:
        with cache_lock(cfg.cache):
            existed = kind_of(cfg.cache).exists(cfg.cache)  # under the lock: another run may create it
            kind_of(cfg.cache).remove_partials(cfg.cache, cfg.split)  # temporaries of writes a kill cut short
            prepared = prepare_split(SplitPlan(cfg.cache, cfg.split, [r.image_id for r in records], sizes,
                                               fingerprint, os.path.abspath(cfg.data), cfg.codec, cfg.rebuild,
                                               present_ids={r.image_id for r in listed}, dataset=dataset,
                                               extent=extent))
            if prepared.group.attrs.get("listed") != len(listed):  # what Stage 2 counts a --limit subset against
                prepared.group.attrs["listed"] = len(listed)
    except (OSError, SamcacheError) as exc:
        if not existed and Path(cfg.cache).is_dir():  # a store this run began: nothing of value in it yet
            shutil.rmtree(cfg.cache, ignore_errors=True)
        if isinstance(exc, OSError):
            raise SamcacheError(f"cannot write to the cache {cfg.cache}: {exc.strerror or exc}") from None
        raise
    prepared.moved = moved.note() if moved else None
    return prepared, {r.image_id: r for r in records}


def run_local(cfg: ExtractConfig, backend, encoder, precision: str, prepared: PreparedSplit,
              by_id: dict[str, ImageRecord], progress: bool = True) -> tuple[int, float, list[str]]:
    """Encode the pending rows on this machine; returns (images written, encoder seconds, errors)."""
    device = next(encoder.parameters()).device
    registered = prepared.group["original_sizes"][:]
    size = (int(prepared.group.attrs["height"]), int(prepared.group.attrs["width"]))  # the largest: the batch fits
    encoding = Encoding(backend, encoder, precision, cfg.dtype)
    batch_size = encoding.batch_size(size, cfg.batch_size, device)
    rows = prepared.pending_rows
    items = _RowDataset(rows, [by_id[prepared.image_ids[r]] for r in rows], backend.prepare, dataset_of_config(cfg),
                        [registered[r] for r in rows])
    loader = DataLoader(items, batch_size=batch_size, num_workers=cfg.num_workers,
                        collate_fn=collate_items, pin_memory=device.type == "cuda",
                        persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None,
                        worker_init_fn=worker_init_fn() if cfg.num_workers else None)
    writer = ChunkWriter(prepared.group, backend.features, max_pending=4 * batch_size)
    errors: list[str] = []
    encoder_seconds = 0.0
    bar = tqdm(total=len(rows), unit="img", desc=f"extract {cfg.split}", disable=not progress)
    batches = iter(loader)
    try:
        for batch in batches:
            check_interrupt()
            errors.extend(batch["errors"])
            if batch["images"] is not None:
                loaded = LoadedBatch(batch["rows"], batch["images"], batch["input_sizes"], batch["labels"],
                                     batch["instances"])
                encoder_seconds += encode_and_write(encoding, loaded, writer.put)
            bar.update(len(batch["rows"]) + len(batch["errors"]))
            bar.set_postfix(failed=len(errors), refresh=False)
    finally:
        stop_workers(batches)  # stop decoding at once (an interrupt must not wait on queued PNGs)
        bar.close()
        writer.close()  # finish the images already encoded: they are done work
    return writer.written, encoder_seconds, errors


def extract(cfg: ExtractConfig, progress: bool = True) -> ExtractResult:
    """Encode every image of ``cfg.split`` that the cache does not hold yet."""
    backend = backend_for(cfg.model_type)
    if not kind_of(cfg.cache).writable:
        raise SamcacheError(f"{cfg.cache} is {kind_of(cfg.cache).as_cache}, which is read-only; "
                            f"{kind_of(cfg.cache).write_advice}")
    check_location(cfg.cache, os.path.abspath(cfg.data))  # before anything is built or written
    dataset = dataset_of_config(cfg)
    precheck(cfg.cache, cfg.split, cfg.model_type, cfg.codec, os.path.abspath(cfg.data),
             dataset.list_labelled(cfg.data, cfg.split), cfg.rebuild, dataset)
    backend.require_weights_file(cfg.model_type, cfg.checkpoint)
    # an unreachable cluster or a wrong checkpoint stops here, before any file (lock or store) is made
    with _session(cfg) as dask:
        if dask is not None:  # the workers resolve the device and build the model; the driver checks the weights
            weights = backend.check_weights(cfg.model_type, cfg.checkpoint, cfg.seed)
            precision, device_name = dask.precision(cfg.precision), f"dask:{cfg.dask}"
        else:
            device = resolve_device(cfg.device)
            precision, device_name = resolve_precision(cfg.precision, device), describe_device(device)
            encoder, weights = backend.build_encoder(cfg.model_type, cfg.checkpoint, cfg.seed,
                                                     attention=cfg.attention)
            configure_matmul(device, precision)
            encoder = maybe_compile(encoder.to(device).eval(), cfg.compile)
        with split_lock(cfg.cache, cfg.split):
            return _extract_locked(cfg, backend, dask, None if dask else encoder, weights, precision, device_name,
                                   progress)


def _extract_locked(cfg: ExtractConfig, backend, dask, encoder, weights, precision: str, device_name: str,
                    progress: bool) -> ExtractResult:
    """Plan, encode what is pending and record the run; under the split's lock."""
    prepared, by_id = plan(cfg, weights, precision)
    errors: list[str] = []
    started, t0 = now_iso(), time.perf_counter()
    written, enc_s = 0, 0.0
    if prepared.pending_rows:
        if dask is not None:
            written, enc_s, failed = dask.run(cfg, prepared, weights, precision, progress=progress)
        else:
            written, enc_s, failed = run_local(cfg, backend, encoder, precision, prepared, by_id, progress)
        errors += failed
    seconds = time.perf_counter() - t0
    split = CacheSplit(cfg.split, prepared.group, cfg.cache, backend.info, backend.features, backend.main_feature,
                       dataset_of_config(cfg))
    n_done, n_expected = split.progress()
    result = ExtractResult(cfg.split, written, seconds, split.nbytes_stored(), n_expected, n_done,
                           enc_s / written if written else None, device_name, errors, prepared.stale_splits,
                           prepared.newly_dropped, prepared.gone_done, prepared.moved,
                           describe_record(cfg.cache, cfg.split, read_record(cfg.cache, cfg.split)))
    if written:
        record_run(prepared.group, {"started": started, "images": written, "seconds": round(seconds, 3),
                                    "encoder_seconds_per_image": result.encoder_seconds_per_image,
                                    "device": device_name, "precision": precision,
                                    "attention": cfg.attention, "random_weights": weights.random,
                                    "config": cfg.dump()})
    return result


def dataset_of_config(cfg: ExtractConfig) -> Dataset:
    """The dataset --dataset and --condition choose."""
    return get_dataset(cfg.dataset, cfg.condition)


@contextlib.contextmanager
def _session(cfg: ExtractConfig):
    """A Dask session when --dask is given, else None (local extraction)."""
    if not cfg.dask:
        yield None
        return
    from samcache.pipeline.dask_extract import dask_session  # distributed is imported only when used

    with dask_session(cfg) as session:
        yield session
