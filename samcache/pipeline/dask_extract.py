"""Stage 1 on Dask: many workers, one Zarr cache.

The driver has already created the split (``extract.plan``); here it submits batches of
pending rows. Each worker loads the encoder once (a WorkerPlugin), and its tasks read
images, encode them and write their own chunks and ``done`` flags straight into the
store. Only a few counters travel back through the scheduler, never embeddings.
One image per chunk means workers never share a chunk; ``done`` is set after the data,
so a worker that dies mid-task loses nothing that a retry or a re-run does not redo.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
import re
import socket
import time
from typing import Callable, Iterator

import torch
from distributed import Client, LocalCluster, Nanny, SpecCluster, WorkerPlugin, as_completed, get_worker
from distributed.scheduler import Scheduler
from tqdm import tqdm

from samcache.cache.schema import per_image_arrays
from samcache.cache.stores import configure_kinds, kind_of, kind_settings
from samcache.cache.writer import PreparedSplit, as_registered, write_image
from samcache.data.dataset import Dataset, ImageRecord
from samcache.data.datasets import get_dataset
from samcache.errors import SamcacheError
from samcache.features.families import backend_for
from samcache.features.device import configure_matmul, maybe_compile, resolve_device
from samcache.pipeline.dask_options import parse_dask_address, parse_resources
from samcache.pipeline.encode import Encoding, LoadedBatch, encode_and_write

PLUGIN = "samcache-encoder"
WORKER_WAIT_S = 60
WATCH_S = 10  # slurm:N: how often the jobs are checked while tasks run
TASK_IMAGES = 8  # images per task when --batch-size is automatic (each worker picks its own batch size)


@dataclass(frozen=True)
class WorkerEncoder:
    """What every worker builds: which weights, on which device, at which precision and batch size."""

    model_type: str
    checkpoint: str | None
    seed: int
    device: str  # resolved by each worker on its own machine
    precision: str
    attention: str
    compile_model: bool
    batch_size: int | None  # None: measured on each worker's device
    torch_threads: int | None
    store_settings: dict  # the driver's storage: settings (endpoint, ...): a worker process starts without them


class EncoderPlugin(WorkerPlugin):
    """Loads the image encoder once per worker process, on the worker's own device; tasks find it by name."""

    name = PLUGIN

    def __init__(self, spec: WorkerEncoder):
        self.spec, self.precision, self.batch_size = spec, spec.precision, spec.batch_size
        self.encoder = self.weights = self.device = None

    def setup(self, worker) -> None:
        spec = self.spec
        configure_kinds(spec.store_settings)
        if spec.torch_threads:
            torch.set_num_threads(spec.torch_threads)
        self.device = resolve_device(spec.device)  # the worker's GPU, whatever the driver has
        self.backend = backend_for(spec.model_type)
        encoder, self.weights = self.backend.build_encoder(spec.model_type, spec.checkpoint, spec.seed,
                                                           attention=spec.attention)
        configure_matmul(self.device, spec.precision)
        self.encoder = maybe_compile(encoder.to(self.device).eval(), spec.compile_model)

    def batch_for(self, original_size) -> int:
        """--batch-size, or what fits on this worker's device for images of this size (measured once)."""
        encoding = Encoding(self.backend, self.encoder, self.precision, "float32")  # the dtype is not measured
        self.batch_size = encoding.batch_size(original_size, self.batch_size, self.device)
        return self.batch_size


def encode_rows(cache: str, split: str, items: list[tuple[int, ImageRecord]], precision: str, dtype: str,
                expected_weights: tuple, dataset: Dataset) -> dict:
    """One task: encode and store ``items`` (row, record); returns counts and per-image read errors."""
    plugin: EncoderPlugin = get_worker().plugins[PLUGIN]
    if (plugin.weights.checkpoint_sha256, plugin.weights.random_seed) != expected_weights:
        raise SamcacheError(f"worker {get_worker().address} loaded other weights ({plugin.weights.describe()})")
    backend = plugin.backend
    group = kind_of(cache).open(cache, "r+")[split]
    arrays = {name: group[name] for name in per_image_arrays(backend.features)}
    done = arrays["done"]
    todo = [(row, rec) for row, rec in items if not done[row]]  # a retried task skips what it finished
    written, seconds, errors = 0, 0.0, []
    step = plugin.batch_for((int(group.attrs["height"]), int(group.attrs["width"])))  # the split's largest image
    registered = group["original_sizes"]
    encoding = Encoding(backend, plugin.encoder, precision, dtype)
    for start in range(0, len(todo), step):
        batch = [(row, as_registered(dataset.load_item(rec, backend.prepare), registered[row], rec.image_path))
                 for row, rec in todo[start: start + step]]
        errors += [it["error"] for _, it in batch if "error" in it]
        batch = [(row, it) for row, it in batch if "error" not in it]
        if not batch:
            continue
        seconds += encode_and_write(encoding, LoadedBatch.of(batch),
                                    lambda row, features, labels, instances: write_image(arrays, row, features,
                                                                                         labels, instances))
        written += len(batch)
    return {"written": written, "seconds": seconds, "errors": errors}


def start_cluster(address: str, resources: dict[str, float], cfg=None):
    """``local:N`` -> a cluster on this machine (one worker per GPU when there are GPUs); ``slurm:N`` -> N SLURM
    jobs with ``cfg``'s slurm settings; else join ``address``. Returns (client, cluster or None, torch threads)."""
    kind, n = parse_dask_address(address)
    if kind == "slurm":
        try:  # dask-jobqueue is imported only for slurm:N
            from samcache.pipeline.slurm_cluster import start_slurm
        except ImportError as exc:
            raise SamcacheError(f"--dask slurm:N needs dask-jobqueue ({exc}): pip install dask-jobqueue") from None
        client, cluster = start_slurm(cfg, n, resources)
        return client, cluster, cfg.slurm_cores
    if kind != "local":
        _check_reachable(address)
        try:
            return Client(address, timeout="10s"), None, None
        except OSError as exc:
            raise SamcacheError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    gpus = torch.cuda.device_count()
    common = {"dashboard_address": None}
    if gpus:  # one worker per GPU, each seeing only its own, one task at a time (no two threads share an encoder)
        n = min(n, gpus)
        workers = {i: {"cls": Nanny, "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i)},
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


class DaskSession:
    """A client (and the local cluster it started) for one extraction."""

    def __init__(self, client: Client, threads: int | None, resources: dict[str, float],
                 watch: Callable[[], None] | None = None):
        self.client, self.threads, self.resources = client, threads, resources
        self.watch = watch  # raises when no worker can come any more (slurm:N: every job ended)

    def precision(self, requested: str) -> str:
        """'auto' as the workers see it: bf16 if every worker has CUDA, fp32 if none has."""
        if requested != "auto":
            return requested
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            raise SamcacheError(f"no Dask worker joined the scheduler within {WORKER_WAIT_S} s") from None
        has_cuda = set(self.client.run(torch.cuda.is_available).values())
        if len(has_cuda) > 1:
            raise SamcacheError("some Dask workers have a GPU and some do not; pass --precision explicitly")
        return "bf16" if has_cuda.pop() else "fp32"

    def run(self, cfg, prepared: PreparedSplit, weights, precision: str, progress: bool = True
            ) -> tuple[int, float, list[str]]:
        """Encode ``prepared.pending_rows`` on the cluster; returns (written, encoder seconds, errors)."""
        client, resources = self.client, self.resources
        checkpoint = os.path.abspath(cfg.checkpoint) if cfg.checkpoint else None
        client.register_plugin(EncoderPlugin(WorkerEncoder(cfg.model_type, checkpoint, cfg.seed, cfg.device, precision,
                                                           cfg.attention, cfg.compile, cfg.batch_size, self.threads,
                                                           kind_settings())))
        rows = prepared.pending_rows
        per_task = cfg.batch_size or TASK_IMAGES
        data_root = os.path.abspath(cfg.data)  # workers may run in another directory or on another node
        dataset = get_dataset(cfg.dataset, cfg.condition)
        tasks = [[(r, dataset.record_for(data_root, cfg.split, prepared.image_ids[r])) for r in rows[s: s + per_task]]
                 for s in range(0, len(rows), per_task)]
        expected = (weights.checkpoint_sha256, weights.random_seed)
        futures = [client.submit(encode_rows, _store_path(cfg.cache), cfg.split, task, precision, cfg.dtype,
                                 expected, dataset, key=f"samcache-{cfg.split}-{task[0][0]}-{time.time_ns()}",
                                 retries=cfg.retries, resources=resources or None, pure=False)
                   for task in tasks]
        written, seconds, errors = 0, 0.0, []
        bar = tqdm(total=len(futures), unit="task", desc=f"extract {cfg.split} on dask {cfg.dask}",
                   disable=not progress)
        try:
            for future in _completed(futures, self.watch):
                if future.status == "finished":
                    out = _result(future, self.watch)
                    written, seconds = written + out["written"], seconds + out["seconds"]
                    errors += out["errors"]
                bar.update(1)
                bar.set_postfix(images=written, refresh=False)
        finally:
            bar.close()
        failures = {f.key: f.exception() if f.status == "error" else f.status for f in futures
                    if f.status != "finished"}
        done = prepared.group["done"][:]
        missing = [prepared.image_ids[r] for r in prepared.pending_rows if not done[r]]
        named = " ".join(errors)
        first = next(iter(failures.values()), None)
        reason = "" if first is None else f" (task {first})" if isinstance(first, str) else \
            f" ({type(first).__name__}: {first})"
        errors += [f"{i}: not written{reason}" for i in missing if i not in named]
        return written, seconds, errors


def _completed(futures: list, watch: Callable[[], None] | None) -> Iterator:
    """``as_completed(futures)``, calling ``watch`` every WATCH_S while waiting."""
    if watch is None:
        yield from as_completed(futures)
        return
    pending, checked = as_completed(futures), time.monotonic()
    while not pending.is_empty():
        yield from pending.next_batch(block=False)
        if time.monotonic() - checked > WATCH_S:
            watch()
            checked = time.monotonic()
        time.sleep(0.1)


def _result(future, watch: Callable[[], None] | None):
    """``future.result()``, calling ``watch`` every WATCH_S while it waits: a result held by a worker that died
    is computed again, which needs a worker."""
    if watch is None:
        return future.result()
    while True:
        try:
            return future.result(timeout=WATCH_S)
        except TimeoutError:
            watch()


@contextlib.contextmanager
def dask_session(cfg) -> Iterator[DaskSession]:
    """Connect to (or start) the cluster; always close it and restore this process's environment."""
    resources = parse_resources(cfg.resources)
    environ = dict(os.environ)  # LocalCluster sets MKL/OPENBLAS_NUM_THREADS=1 etc. in *this* process too
    client, cluster, threads = start_cluster(cfg.dask, resources, cfg)
    try:
        yield DaskSession(client, threads, resources, getattr(cluster, "check_alive", None))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
        os.environ.clear()  # later subprocesses (and their BLAS threads) see what they saw before
        os.environ.update(environ)


def _store_path(cache: str) -> str:
    """Workers may run elsewhere: absolute local paths, URLs unchanged."""
    return kind_of(cache).absolute(cache)
