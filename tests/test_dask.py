"""Stage 1 on Dask: a LocalCluster and an explicitly started scheduler write the same cache as one process."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


from conftest import assert_one_line_error, assert_same_split, done_count, extract_cfg, invoke, run_cli
from samcache.cache.reader import open_cache
from samcache.pipeline.extract import extract

DASK = str(Path(sys.executable).parent / "dask")  # the CLI the README tells users to run


@pytest.mark.slow
def test_local_cluster_writes_the_single_process_cache(synth_root, cache32, tmp_path):
    cache = tmp_path / "local2.zarr"
    result = extract(extract_cfg(synth_root, cache, "train", dask="local:2"), progress=False)
    assert (result.images, result.n_done, result.failed) == (6, 6, [])
    assert_same_split(cache, cache32, "train")  # float32, bit-identical
    again = extract(extract_cfg(synth_root, cache, "train", dask="local:2"), progress=False)
    assert again.images == 0  # nothing pending: no task is submitted


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([DASK, *args], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def scheduler_and_two_workers(tmp_path: Path, *worker_args: str):
    """`dask scheduler` + two `dask worker` (one process, one thread each) on loopback, started as the README
    says; yields (address, processes: the scheduler first); every process is killed at the end."""
    scheduler_file = tmp_path / "scheduler.json"
    procs = [_spawn("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                    "--scheduler-file", str(scheduler_file))]
    try:
        _wait_for(scheduler_file.exists, 60, "the scheduler")
        address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(2):
            procs.append(_spawn("worker", address, "--nworkers", "1", "--nthreads", "1", *worker_args,
                                "--host", "127.0.0.1", "--no-dashboard"))
        yield address, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_explicit_scheduler_with_gpu_resources_survives_a_killed_worker(synth_root, cache32, tmp_path):
    """`dask scheduler` + two `dask worker --resources GPU=1` on loopback; one worker is killed mid-run."""
    with scheduler_and_two_workers(tmp_path, "--resources", "GPU=1") as (address, procs):
        cache = tmp_path / "remote.zarr"
        args = ["extract", "--data", synth_root, "--cache", cache, "--split", "train", "--model-type", "tiny",
                "--batch-size", "1", "--dtype", "float32", "--dask", address, "--resources", "GPU=1",
                "--attention", "upstream"]
        run = subprocess.Popen([sys.executable, "-m", "samcache.pipeline.cli", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: done_count(cache, "train") >= 1 or run.poll() is not None, 300, "the first image")
        os.killpg(procs[1].pid, signal.SIGKILL)  # nanny and worker: its running task is lost
        assert done_count(cache, "train") < 6, "the kill should land mid-run"
        out, err = run.communicate(timeout=600)
        if run.returncode != 0:  # a task can run out of retries on a dying worker: one re-run finishes
            assert "not written" in err or "failed" in err, err
            run_cli(*args, check=True)
        assert open_cache(cache).split("train").done_mask().all()
        assert_same_split(cache, cache32, "train")


def test_unreachable_scheduler_and_bad_flags_are_one_line_errors(synth_root, tmp_path):
    common = ["extract", "--data", synth_root, "--cache", tmp_path / "c.zarr", "--split", "val",
              "--model-type", "tiny", "--limit", "1"]
    assert_one_line_error(invoke(*common, "--dask", "tcp://127.0.0.1:9"), "cannot reach the Dask scheduler")
    assert_one_line_error(invoke(*common, "--dask", "local:x"), "local:N")
    assert_one_line_error(invoke(*common, "--dask", "local:1", "--resources", "GPU"), "NAME=AMOUNT")
