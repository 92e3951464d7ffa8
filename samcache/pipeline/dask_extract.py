"""Stage 1 on Dask: many workers, one Zarr cache.

The driver has already created the split (``extract.plan``); here it submits batches of
pending rows. Each worker loads the encoder once (a WorkerPlugin), and its tasks read
images, encode them and write their own chunks and ``done`` flags straight into the
store. Only a few counters travel back through the scheduler, never embeddings.
One image per chunk means workers never share a chunk; ``done`` is set after the data,
so a worker that dies mid-task loses nothing that a retry or a re-run does not redo.
"""

from __future__ import annotations

import os
import re
import socket
import time

import torch
import zarr
from distributed import Client, LocalCluster, Nanny, SpecCluster, WorkerPlugin, as_completed, get_worker
from distributed.scheduler import Scheduler
from tqdm import tqdm

from samcache.cache.schema import PER_IMAGE_ARRAYS
from samcache.cache.writer import PreparedSplit, write_image
from samcache.data.cityscapes import ImageRecord, load_item, record_for
from samcache.errors import SamcacheError
from samcache.features.encoder import encode, resolve_device
from samcache.features.models import build_sam
from samcache.features.preprocess import resize_and_pad_uint8
from samcache.pipeline.configs import parse_dask_address, parse_resources

PLUGIN = "samcache-encoder"


class EncoderPlugin(WorkerPlugin):
    """Loads the image encoder once per worker process; tasks find it by name."""

    name = PLUGIN

    def __init__(self, model_type: str, checkpoint: str | None, seed: int, device: str, torch_threads: int | None):
        self.model_type, self.checkpoint, self.seed = model_type, checkpoint, seed
        self.device_name, self.torch_threads = device, torch_threads
        self.encoder = self.weights = self.device = None

    def setup(self, worker) -> None:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.device = resolve_device(self.device_name)
        sam, self.weights = build_sam(self.model_type, self.checkpoint, self.seed)
        self.encoder = sam.image_encoder.to(self.device).eval()


def encode_rows(cache: str, split: str, items: list[tuple[int, ImageRecord]], precision: str, dtype: str,
                batch_size: int, expected_weights: tuple) -> dict:
    """One task: encode and store ``items`` (row, record); returns counts and per-image read errors."""
    plugin: EncoderPlugin = get_worker().plugins[PLUGIN]
    if (plugin.weights.checkpoint_sha256, plugin.weights.random_seed) != expected_weights:
        raise SamcacheError(f"worker {get_worker().address} loaded other weights ({plugin.weights.describe()})")
    group = zarr.open_group(cache, mode="r+")[split]
    arrays = {name: group[name] for name in PER_IMAGE_ARRAYS}
    done = arrays["done"]
    todo = [(row, rec) for row, rec in items if not done[row]]  # a retried task skips what it finished
    written, seconds, errors = 0, 0.0, []
    for start in range(0, len(todo), batch_size):
        batch = [(row, load_item(rec, resize_and_pad_uint8)) for row, rec in todo[start: start + batch_size]]
        errors += [it["error"] for _, it in batch if "error" in it]
        batch = [(row, it) for row, it in batch if "error" not in it]
        if not batch:
            continue
        t0 = time.perf_counter()
        images = torch.stack([it["image"] for _, it in batch])
        sizes = torch.tensor([it["input_size"] for _, it in batch], dtype=torch.int32)
        emb = encode(plugin.encoder, images.to(plugin.device), sizes, precision)
        emb = emb.to(torch.float16 if dtype == "float16" else torch.float32).cpu().numpy()
        seconds += time.perf_counter() - t0
        for k, (row, it) in enumerate(batch):
            write_image(arrays, row, emb[k], it["labels"], it["instances"])
            written += 1
    return {"written": written, "seconds": seconds, "errors": errors}


def start_cluster(address: str, resources: dict[str, float]):
    """``local:N`` -> a cluster on this machine (one worker per GPU when there are GPUs); else join ``address``."""
    kind, n = parse_dask_address(address)
    if kind != "local":
        _check_reachable(address)
        try:
            return Client(address, timeout="10s"), None, None
        except OSError as exc:
            raise SamcacheError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    gpus = torch.cuda.device_count()
    common = {"dashboard_address": None}
    if gpus:  # one worker per GPU, each seeing only its own; two threads overlap decode with encode
        n = min(n, gpus)
        workers = {i: {"cls": Nanny, "options": {"nthreads": 2, "env": {"CUDA_VISIBLE_DEVICES": str(i)},
                                                  "resources": {"GPU": 1, **resources}}} for i in range(n)}
        cluster = SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": common}, silence_logs=40)
        threads = None
    else:  # the encoder is compute bound: one task per process, the cores split between processes
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, resources=resources or None,
                               silence_logs=40, **common)
        threads = max(1, (os.cpu_count() or 1) // n)
    return Client(cluster), cluster, threads


def _check_reachable(address: str) -> None:
    """A refused or unroutable tcp:// scheduler fails in a second, not after the client's retries."""
    match = re.fullmatch(r"tcp://\[?([^\]]+?)\]?:(\d+)", address)
    if not match:
        return
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=5).close()
    except OSError as exc:
        raise SamcacheError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}") from None


def run_dask(cfg, prepared: PreparedSplit, weights, progress: bool = True) -> tuple[int, float, list[str]]:
    """Encode ``prepared.pending_rows`` on a Dask cluster; returns (written, encoder seconds, errors)."""
    resources = parse_resources(cfg.resources)
    environ = dict(os.environ)  # LocalCluster sets MKL/OPENBLAS_NUM_THREADS=1 etc. in *this* process too
    client, cluster, threads = start_cluster(cfg.dask, resources)
    try:
        checkpoint = os.path.abspath(cfg.checkpoint) if cfg.checkpoint else None
        client.register_plugin(EncoderPlugin(cfg.model_type, checkpoint, cfg.seed, cfg.device, threads))
        rows = prepared.pending_rows
        per_task = max(cfg.batch_size, 1)
        data_root = os.path.abspath(cfg.data)  # workers may run in another directory or on another node
        tasks = [[(r, record_for(data_root, cfg.split, prepared.image_ids[r])) for r in rows[s: s + per_task]]
                 for s in range(0, len(rows), per_task)]
        expected = (weights.checkpoint_sha256, weights.random_seed)
        futures = [client.submit(encode_rows, _store_path(cfg.cache), cfg.split, task, cfg.precision, cfg.dtype,
                                 per_task, expected, key=f"samcache-{cfg.split}-{task[0][0]}-{time.time_ns()}",
                                 retries=cfg.retries, resources=resources or None, pure=False)
                   for task in tasks]
        written, seconds, errors = 0, 0.0, []
        bar = tqdm(total=len(futures), unit="task", desc=f"extract {cfg.split} on dask {cfg.dask}",
                   disable=not progress)
        for future in as_completed(futures):
            if future.status == "finished":
                out = future.result()
                written, seconds, errors = written + out["written"], seconds + out["seconds"], errors + out["errors"]
            bar.update(1)
            bar.set_postfix(images=written, refresh=False)
        bar.close()
        failures = {f.key: f.exception() if f.status == "error" else f.status for f in futures
                    if f.status != "finished"}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        os.environ.clear()  # later subprocesses (and their BLAS threads) see what they saw before
        os.environ.update(environ)
    done = prepared.group["done"][:]
    missing = [prepared.image_ids[r] for r in prepared.pending_rows if not done[r]]
    named = " ".join(errors)
    first = next(iter(failures.values()), None)
    reason = "" if first is None else f" (task {first})" if isinstance(first, str) else \
        f" ({type(first).__name__}: {first})"
    errors += [f"{i}: not written{reason}" for i in missing if i not in named]
    return written, seconds, errors


def _store_path(cache: str) -> str:
    """Workers may run elsewhere: absolute local paths, URLs unchanged."""
    return cache if "://" in cache else os.path.abspath(cache)
