"""Stage 1 on Dask into S3 (moto's real S3 server on 127.0.0.1): worker processes write the single-process
cache's bytes, and a worker killed mid-run costs nothing a plain re-run does not redo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr

from conftest import ARRAYS, extract_cfg, run_cli
from samcache.pipeline.extract import extract
from test_dask import _wait_for, scheduler_and_two_workers


def assert_same_as_local(server, url: str, local, split: str) -> None:
    remote = zarr.open_group(url, mode="r", storage_options=server.storage_options())[split]
    for name in ARRAYS:
        assert np.array_equal(remote[name][:], zarr.open_group(str(local), mode="r")[split][name][:]), name


def done_on_s3(server, url: str, split: str) -> int:
    try:
        group = zarr.open_group(url, mode="r", storage_options=server.storage_options())
        return int(group[split]["done"][:].sum())
    except Exception:  # not created yet
        return 0


@pytest.mark.slow
def test_a_local_cluster_writes_the_single_process_cache_into_s3(s3, synth_root, cache32):
    url = f"s3://{s3.bucket()}/dask.zarr"
    result = extract(extract_cfg(synth_root, url, "train", dask="local:2"), progress=False)
    assert (result.images, result.n_done, result.failed) == (6, 6, [])
    assert_same_as_local(s3, url, cache32, "train")


@pytest.mark.slow
def test_a_worker_killed_mid_extract_on_s3_then_a_plain_rerun_gives_the_uninterrupted_cache(s3, synth_root, cache32,
                                                                                            tmp_path):
    # the workers inherit AWS_ENDPOINT_URL and the keys from this process, as on a real cluster
    with scheduler_and_two_workers(tmp_path) as (address, procs):
        url = f"s3://{s3.bucket()}/killed.zarr"
        args = ["extract", "--data", synth_root, "--cache", url, "--split", "train", "--model-type", "tiny",
                "--batch-size", "1", "--dtype", "float32", "--dask", address, "--attention", "upstream"]
        run = subprocess.Popen([sys.executable, "-m", "samcache.pipeline.cli", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: done_on_s3(s3, url, "train") >= 1 or run.poll() is not None, 300, "the first image")
        os.killpg(procs[1].pid, signal.SIGKILL)  # nanny and worker: its running task is lost
        assert done_on_s3(s3, url, "train") < 6, "the kill should land mid-run"
        out, err = run.communicate(timeout=600)
        if run.returncode != 0:  # a task can run out of retries on a dying worker
            assert "not written" in err or "failed" in err, err
        time.sleep(0.1)
        run_cli(*args, check=True)  # the plain re-run
        assert done_on_s3(s3, url, "train") == 6
        assert_same_as_local(s3, url, cache32, "train")
