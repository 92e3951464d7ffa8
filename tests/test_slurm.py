"""`extract --dask slurm:N`: settings checked in one line, the job script SLURM gets, and (slow) a real one-node
SLURM cluster (tests/slurm/one_node_slurm.sh) whose jobs write the single-process cache bit for bit, into a shared
path or an S3 bucket, and whose jobs never outlive the command."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import zarr

from conftest import ARRAYS, assert_one_line_error, done_count, invoke
from docs_text import code
from samcache.pipeline.configs import ExtractConfig

SCRIPT = Path(__file__).parent / "slurm" / "one_node_slurm.sh"
JOB = ["--slurm-memory", "3GB", "--slurm-cores", "1", "--slurm-walltime", "00:10:00"]  # fits the one small node


def test_slurm_settings_are_one_line_errors_before_anything_is_written(synth_root, tmp_path, monkeypatch):
    common = ["extract", "--data", synth_root, "--cache", tmp_path / "c.zarr", "--split", "val", "--model-type",
              "tiny", "--limit", "1"]
    for args, needle in [
        (["--dask", "slurm:0"], "--dask slurm:N needs N >= 1"),
        (["--slurm-queue", "gpu"], "--slurm-queue applies to SLURM jobs; give --dask slurm:N too"),
        (["--dask", "local:1", "--slurm-gres", "gpu:1"], "--slurm-gres applies to SLURM jobs"),
        (["--dask", "slurm:2", "--slurm-walltime", "1h"], "invalid value for --slurm-walltime"),
        (["--dask", "slurm:2", "--slurm-memory", "16"], "like 16GB or 500MB"),
        (["--dask", "slurm:2", "--slurm-directive", "qos=high"], "one sbatch option, like --qos=high"),
    ]:
        assert_one_line_error(invoke(*common, *args), needle)
    (tmp_path / "c.yaml").write_text("extract:\n  dask: slurm:2\n  slurm_walltime: 2:00:00\n")  # YAML: 7200
    assert_one_line_error(invoke(*common, "--config", tmp_path / "c.yaml"), "slurm_walltime in", "quote it")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: not a SLURM login node
    assert_one_line_error(invoke(*common, "--dask", "slurm:2"), "--dask slurm:N needs SLURM's sbatch on this machine's "
                                                                "PATH")
    assert not (tmp_path / "c.zarr").exists()


def test_each_job_asks_slurm_for_the_documented_settings_and_its_worker_advertises_the_resources(tmp_path):
    """The script dask-jobqueue hands to sbatch for docs/scaling-out.md's YAML, read back line by line."""
    from samcache.pipeline.config import resolve
    from samcache.pipeline.dask_options import parse_resources
    from samcache.pipeline.slurm_cluster import job_options  # first: it keeps this process's SIGINT handler
    from dask_jobqueue.slurm import SLURMJob

    (tmp_path / "slurm.yaml").write_text(code("slurm-yaml", "yaml"))
    cfg = resolve(ExtractConfig, tmp_path / "slurm.yaml", slurm_python="/opt/venv/bin/python",  # flags win, and
                  resources="GPU=1,MEM=8e9", slurm_directives=["--qos=high", "#SBATCH --constraint=a100"])  # replace
    options = job_options(cfg, parse_resources(cfg.resources))
    script = SLURMJob("tcp://10.1.2.3:8786", name="w0", **options).job_script()
    directives = [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == ["-J samcache-extract", "-p gpu", "-A myproject", "-n 1", "--cpus-per-task=8",
                          "--mem=32G", "-t 02:00:00", "--gres=gpu:1", "--qos=high", "--constraint=a100"]
    command = script.strip().splitlines()[-1].split()
    assert command[:4] == ["/opt/venv/bin/python", "-m", "distributed.cli.dask_worker", "tcp://10.1.2.3:8786"]
    assert command[command.index("--nthreads") + 1] == "1"  # one task at a time: the encoder is compute bound
    assert command[command.index("--resources") + 1] == "GPU=1,MEM=8e+09"  # the worker CLI splits on ','
    assert "--nworkers" not in command  # one worker process per job
    assert command[command.index("--memory-limit") + 1] == "32.00GiB"  # the job's memory, all to its worker


# ---- a real one-node SLURM cluster ----

def _processes_of(folder: str) -> list[str]:
    """Processes whose command line or SLURM_CONF names ``folder`` (the daemons, slurmstepd, job processes)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if folder in cmdline or f"SLURM_CONF={folder}/slurm.conf".encode() in environ:
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


@pytest.fixture(scope="module")
def slurm():
    """A one-node SLURM cluster, started by the repo's script (apt-get installs it as root) and stopped after:
    its daemons and every job process gone, its folder removed. Skips where no cluster can be had."""
    start = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if start.returncode == 3:
        pytest.skip(f"no one-node SLURM cluster here: {start.stdout.strip().removeprefix('SKIP: ')}")
    assert start.returncode == 0, start.stdout + start.stderr
    conf = start.stdout.strip().splitlines()[-1].removeprefix("SLURM_CONF=")
    folder = str(Path(conf).parent)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SLURM_CONF", conf)  # sbatch, squeue, scancel (the tests' and samcache's) find the cluster
            yield conf
    finally:
        stop = subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert not Path(folder).exists()
        assert _processes_of(folder) == []


@pytest.fixture(params=["shared-path", "s3"])
def slurm_cache(request, tmp_path) -> tuple[str, dict]:
    """Where the jobs' workers write, and how plain zarr reads it: a path every node sees, or a bucket on moto's
    S3 server (the jobs inherit the AWS_* variables pointing at it, as sbatch passes the environment on)."""
    if request.param == "shared-path":
        return str(tmp_path / "slurm.zarr"), {}
    server = request.getfixturevalue("s3")
    return f"s3://{server.bucket()}/slurm.zarr", server.storage_options()


def _extract_args(data, cache, *extra) -> list[str]:
    return ["extract", "--data", str(data), "--cache", str(cache), "--split", "train", "--model-type", "tiny",
            "--batch-size", "1", "--dtype", "float32", "--attention", "upstream", "-q", *JOB, *extra]


@contextlib.contextmanager
def _samcache(cwd: Path, args: list[str]) -> Iterator[subprocess.Popen]:
    """The CLI as a user runs it, in ``cwd`` (sbatch writes the jobs' slurm-JOBID.out there); killed if the test
    fails first (the fixture's stop then cancels its jobs)."""
    proc = subprocess.Popen([sys.executable, "-m", "samcache.pipeline.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _run(cwd: Path, args: list[str]) -> subprocess.CompletedProcess:
    with _samcache(cwd, args) as proc:
        out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _squeue() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def _assert_no_jobs_left() -> None:
    """scancel returns at once; a cancelled job may show COMPLETING for a moment."""
    deadline = time.monotonic() + 60
    while _squeue() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _squeue() == []


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.mark.slow
def test_two_slurm_jobs_write_the_single_process_cache(slurm, synth_root, cache32, slurm_cache, tmp_path):
    cache, storage_options = slurm_cache
    proc = _run(tmp_path, _extract_args(synth_root, cache, "--dask", "slurm:2", "--resources", "GPU=1"))
    assert proc.returncode == 0, proc.stderr
    written = zarr.open_group(cache, mode="r", storage_options=storage_options or None)["train"]
    reference = zarr.open_group(str(cache32), mode="r")["train"]
    for name in ARRAYS:  # plain zarr reads, bit for bit
        assert np.array_equal(written[name][:], reference[name][:]), name
    assert len(list(tmp_path.glob("slurm-*.out"))) == 2  # both jobs ran a worker
    _assert_no_jobs_left()


@pytest.mark.slow
def test_slurm_failures_are_one_line_and_leave_no_job(slurm, synth_root, tmp_path):
    cache = tmp_path / "c.zarr"
    for args, needle in [
        (["--slurm-queue", "nope"], "SLURM refused the worker jobs: sbatch: error: invalid partition"),
        (["--slurm-python", "/bin/false"], "the SLURM jobs ended before their Dask workers joined"),
        (["--slurm-directive=--begin=now+1hour", "--slurm-wait", "2"], "PENDING (BeginTime)"),
    ]:
        line = assert_one_line_error(_run(tmp_path, _extract_args(synth_root, cache, "--dask", "slurm:2", *args)),
                                     needle)
        _assert_no_jobs_left()
        assert not cache.exists(), line
    # Ctrl-C while the jobs wait in the queue: the command stops with its advice, the jobs are cancelled
    with _samcache(tmp_path, _extract_args(synth_root, cache, "--dask", "slurm:2",
                                           "--slurm-directive=--begin=now+1hour")) as proc:
        _wait_for(lambda: len(_squeue()) == 2, 120, "two pending jobs")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    _assert_no_jobs_left()


@pytest.mark.slow
def test_jobs_that_all_end_mid_run_are_one_line_and_a_rerun_finishes(slurm, tmp_path):
    from samcache.data.synth import write_synthetic

    data = tmp_path / "data"
    write_synthetic(data, {"train": 12}, size=(128, 64), seed=1, progress=False)  # seconds of work to cancel in
    cache = tmp_path / "c.zarr"
    args = _extract_args(data, cache, "--dask", "slurm:2")
    with _samcache(tmp_path, args) as proc:
        _wait_for(lambda: done_count(cache, "train") >= 1 or proc.poll() is not None, 300, "the first image")
        subprocess.run(["scancel", "--name", "samcache-extract"], check=True)  # as a walltime or an admin would
        _, err = proc.communicate(timeout=120)
    line = assert_one_line_error(subprocess.CompletedProcess(args, proc.returncode, "", err),
                                 "every SLURM job of this run has ended", "CANCELLED", "re-run the same command")
    assert done_count(cache, "train") < 12, line
    _assert_no_jobs_left()
    again = _run(tmp_path, args)
    assert again.returncode == 0, again.stderr
    assert done_count(cache, "train") == 12
    _assert_no_jobs_left()
