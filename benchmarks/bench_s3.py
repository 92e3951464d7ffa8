"""A cache on S3 against a local one, side by side in one run: extract img/s, the head's loader samples/s and
zero-shot prompts/s.

The S3 server is moto's (``moto_server``) in its own process on 127.0.0.1, so its request handling does not
share this process's interpreter lock; it still shares the machine's cores, and it answers from memory with
no network latency. Real S3 adds ~10-50 ms per request: the ratios here bound samcache's own overhead
(requests per image, serialisation), not a real bucket's speed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import torch

from benchmarks.common import OUT, synth_data, timer
from samcache.data.labels import get_class_set
from samcache.evaluation.datasets import CacheHeadDataset
from samcache.evaluation.training_data import iterate
from samcache.pipeline.configs import ExtractConfig, ZeroShotConfig
from samcache.pipeline.extract import extract
from samcache.pipeline.zero_shot import run_zero_shot

N_TRAIN, BATCH = 12, 4


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
            return proc, endpoint
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


def _extract(data, cache: str) -> float:
    result = extract(ExtractConfig(data=str(data), cache=cache, split="train", model_type="tiny", device="cpu",
                                   num_workers=1, dtype="float16"), progress=False)
    return result.img_per_s


def _loader_sps(cache: str, workers: int, passes: int = 4) -> float:
    """Steady state: the dataset opened (and the split checked) before the clock starts, as an epoch of
    Cityscapes' 2,975 images amortises it; each worker still opens the store once."""
    ds = CacheHeadDataset(cache, "train", get_class_set("seed5"))
    ds.split.embeddings  # noqa: B018 (opened here, not inside the timing)
    order = list(range(len(ds))) * passes
    with timer() as t:
        for _ in iterate(ds, None, order, BATCH, workers, torch.device("cpu")):
            pass
    return len(order) / t["s"]


def _prompts_per_s(cache: str, name: str) -> float:
    run = run_zero_shot(ZeroShotConfig(cache=cache, split="train", prompt="center", out=str(OUT / f"zs-{name}"),
                                       overwrite=True, visualize=0, device="cpu", num_workers=1), progress=False)
    return run["prompts_per_s"]


def _raw_gets(bucket: str, nbytes: int, n: int = 12) -> tuple[float, float]:
    """The server's own ceiling: GETs/s of chunk-sized objects through s3fs, one at a time and all in flight."""
    from samcache.cache.stores.s3 import file_system

    fs = file_system()
    blob = os.urandom(nbytes)
    paths = [f"{bucket}/raw/{i}" for i in range(n)]
    for path in paths:
        fs.pipe(path, blob)
    with timer() as one:
        for path in paths:
            fs.cat(path)
    with timer() as many:
        fs.cat(paths)
    return n / one["s"], n / many["s"]


def run() -> list[dict]:
    data = synth_data(N_TRAIN, 0)
    proc, endpoint = start_server()
    old = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    try:
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        local = str(OUT / "bench_s3_local.zarr")
        shutil.rmtree(local, ignore_errors=True)
        remote = f"s3://{bucket}/cache.zarr"
        rates = {"local": {}, "s3": {}}
        for where, cache in (("local", local), ("s3", remote)):
            rates[where]["extract"] = _extract(data, cache)
        for where, cache in (("local", local), ("s3", remote)):  # read side by side, after both are written
            rates[where]["loader0"] = _loader_sps(cache, 0)
            rates[where]["loader2"] = _loader_sps(cache, 2)
            rates[where]["prompts"] = _prompts_per_s(cache, where)
        chunk = CacheHeadDataset(local, "train").split.embeddings.nbytes // N_TRAIN
        raw_one, raw_many = _raw_gets(bucket, chunk)
    finally:
        proc.terminate()
        proc.wait()
        for key, value in old.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    names = {"extract": ("extract tiny, 2048x1024, float16", "img/s"),
             "loader0": ("head loader, no workers (every read waits)", "samples/s"),
             "loader2": ("head loader, 2 DataLoader workers (reads in flight)", "samples/s"),
             "prompts": ("zero-shot center, whole run", "prompts/s")}
    rows = []
    for key, (what, unit) in names.items():
        s3, here = rates["s3"][key], rates["local"][key]
        rows.append({"benchmark": "s3", "metric": f"{what}: S3 (moto, own process) / local",
                     "value": f"{s3:.2f} / {here:.2f} {unit} = {s3 / here:.2f}x"})
    rows.append({"benchmark": "s3", "metric": f"the server's ceiling: GET of {chunk / 2**20:.0f} MiB objects (an "
                                               "embedding chunk's raw size), one at a time / all in flight",
                 "value": f"{raw_one:.1f} / {raw_many:.1f} objects/s"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['metric']:70s} {row['value']}")
