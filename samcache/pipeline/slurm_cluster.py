"""`extract --dask slurm:N`: N SLURM jobs through dask-jobqueue, one Dask worker each.

The scheduler runs in the samcache process on the login node; each job runs one worker process
(one task at a time: the encoder is compute bound) that loads the encoder once (``EncoderPlugin``).
dask-jobqueue only logs what goes wrong in its event loop, so this module watches the jobs itself:
sbatch's refusal, jobs that end before their worker joins and workers that never join become one
line each, and every way out of ``start_slurm`` that is not a started cluster cancels the jobs. Once
started, ``dask_session`` closes the cluster (``scancel``) on every exit, Ctrl-C and SIGTERM included;
a driver killed outright leaves workers that stop by themselves once the scheduler is gone
(dask-jobqueue's death timeout, 60 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import dask
from distributed import Client
from distributed.core import Status

_SIGINT = signal.getsignal(signal.SIGINT)
from dask_jobqueue import SLURMCluster  # noqa: E402 - its runner module sets SIGINT to sys.exit() on import,
from dask_jobqueue.slurm import SLURMJob  # noqa: E402   which would make a Ctrl-C a silent exit 0:
if _SIGINT is not None and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _SIGINT)  # the CLI's handler (stop, cancel the jobs, advice, exit 130) again

from samcache.errors import SamcacheError
from samcache.pipeline.dask_options import memory_bytes, sbatch_option

JOB_NAME = "samcache-extract"
POLL_S = 1.0
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "SPECIAL_EXIT", "TIMEOUT", "GONE"}  # GONE: squeue no longer knows the job
SETTINGS = "--slurm-queue, --slurm-account, --slurm-memory, --slurm-cores, --slurm-gres, --slurm-directive"


class SubmittedJob(SLURMJob):
    """A worker job that keeps sbatch's refusal for the driver to report, instead of a traceback that
    dask-jobqueue's event loop would log and the driver would never see."""

    refusal: str | None = None

    async def start(self):
        try:
            await super().start()
        except Exception as exc:  # noqa: BLE001 - whatever sbatch said, reported as one line by start_slurm
            self.refusal = _sbatch_error(exc)
            self.status = Status.running  # what SpecCluster asserts after start(); close() then has no job to cancel

    async def close(self):
        """scancel, then say so: dask-jobqueue 0.9 leaves the status 'running', which distributed's SpecCluster
        asserts against when it closes (an AssertionError after every run)."""
        await super().close()
        self.status = Status.closed


def job_options(cfg, resources: dict[str, float]) -> dict:
    """SLURMCluster's keyword arguments from the ``slurm_*`` settings: what each job asks SLURM for, and the
    flags of its worker (one process, one thread, the tasks' ``--resources``). What they leave unset (None) comes
    from dask-jobqueue's config (``jobqueue.slurm`` in ~/.config/dask/jobqueue.yaml), whose extra directives come
    first (sbatch takes the last of a repeated option)."""
    directives = list(dask.config.get("jobqueue.slurm.job-extra-directives", None) or [])
    directives += [f"--gres={cfg.slurm_gres}"] if cfg.slurm_gres else []
    directives += [sbatch_option(d) for d in cfg.slurm_directives]
    worker_args = ["--resources", ",".join(f"{k}={v:g}" for k, v in resources.items())] if resources else []
    return dict(queue=cfg.slurm_queue, account=cfg.slurm_account, walltime=cfg.slurm_walltime,
                memory=memory_bytes(cfg.slurm_memory), cores=1, processes=1, job_cpu=cfg.slurm_cores,
                job_extra_directives=directives, worker_extra_args=worker_args, python=cfg.slurm_python,
                interface=cfg.slurm_interface, job_name=JOB_NAME)


class WatchedSLURMCluster(SLURMCluster):
    """A SLURMCluster that remembers its jobs (dask-jobqueue forgets a job once its worker is lost), so that the
    driver can tell 'all jobs ended' (walltime, scancel, a node lost) from 'workers busy'."""

    job_cls = SubmittedJob
    job_ids: tuple[str, ...] = ()

    def check_alive(self) -> None:
        """Raise when every job has ended: the tasks left would wait for a worker forever."""
        states = job_states(sorted(set(self.job_ids) | set(_job_ids(self)), key=_by_number))
        if states and all(_ended(state) for state, _ in states.values()):
            raise SamcacheError(f"every SLURM job of this run has ended ({_describe(states)}) with images still to "
                                f"encode; the images done are kept: re-run the same command to finish (with a longer "
                                f"--slurm-walltime if they ran out of time)")


def start_slurm(cfg, jobs: int, resources: dict[str, float]) -> tuple[Client, WatchedSLURMCluster]:
    """Submit ``jobs`` worker jobs and return once the first worker has joined; else cancel them and say why."""
    if shutil.which("sbatch") is None:
        raise SamcacheError("--dask slurm:N needs SLURM's sbatch on this machine's PATH (run samcache on a login "
                            "node of the cluster, or start a scheduler and workers yourself and give --dask "
                            "tcp://HOST:8786)")
    try:
        cluster = WatchedSLURMCluster(scheduler_options={"dashboard_address": None}, **job_options(cfg, resources))
    except (ValueError, OSError) as exc:  # e.g. an --slurm-interface this machine does not have
        raise SamcacheError(f"cannot start the Dask scheduler for --dask {cfg.dask}: "
                            f"{str(exc).strip().splitlines()[0]}") from None
    client = None
    try:
        cluster.scale(jobs=jobs)
        client = Client(cluster)
        cluster.job_ids = _wait_for_first_worker(client, cluster, jobs, cfg.slurm_wait)
    except BaseException:  # an error, Ctrl-C or SIGTERM while waiting: no job outlives the command
        if client is not None:
            client.close()
        cluster.close()
        raise
    return client, cluster


def _wait_for_first_worker(client: Client, cluster: SLURMCluster, jobs: int, wait_s: int) -> tuple[str, ...]:
    """The jobs' ids, once a worker has joined; one line when sbatch refused them, they ended or none started."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            client.wait_for_workers(1, timeout=POLL_S)
            return _job_ids(cluster)
        except TimeoutError:
            pass
        submitted = list(cluster.workers.values())
        ids = _job_ids(cluster)
        refusal = next((job.refusal for job in submitted if getattr(job, "refusal", None)), None)
        if refusal:
            raise SamcacheError(f"SLURM refused the worker jobs: {refusal} (see {SETTINGS})")
        states = job_states(list(ids)) if len(ids) == jobs else {}
        if states and all(_ended(state) for state, _ in states.values()):
            outputs = sorted({out for _, out in states.values() if out})
            raise SamcacheError(f"the SLURM jobs ended before their Dask workers joined ({_describe(states)}); "
                                f"their output: {', '.join(outputs) or _default_output()}")
        if time.monotonic() > deadline:
            raise SamcacheError(f"no SLURM job's Dask worker joined within {wait_s} s ({_describe(states)}); the jobs "
                                f"were cancelled. `squeue` shows why jobs wait; wait longer with --slurm-wait, or "
                                f"ask for less ({SETTINGS})")


def _job_ids(cluster: SLURMCluster) -> tuple[str, ...]:
    return tuple(job.job_id for job in list(cluster.workers.values()) if job.job_id)


def _ended(state: str) -> bool:
    return state.split()[0] in ENDED


def job_states(ids: list[str]) -> dict[str, tuple[str, str]]:
    """job id -> ('STATE (reason)', its stdout file) as squeue sees it; 'GONE' for a job it no longer lists."""
    if not ids:
        return {}
    try:
        proc = subprocess.run(["squeue", "-h", "--states=all", "-j", ",".join(ids), "-O", "JobID:|,State:|,"
                               "Reason:|,STDOUT:"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:  # slurmctld busy or away: nothing known
        return {}
    found = {}
    for line in proc.stdout.splitlines():
        job, state, reason, stdout = (line.split("|") + ["", "", "", ""])[:4]
        reason = "" if reason.strip() in ("", "None") else f" ({reason.strip()})"
        found[job.strip()] = (state.strip() + reason, stdout.strip())
    return {i: found.get(i, ("GONE", "")) for i in ids}


def _describe(states: dict[str, tuple[str, str]]) -> str:
    if not states:
        return "no job submitted yet"
    return ", ".join(f"job {job} {states[job][0]}" for job in sorted(states, key=_by_number))


def _by_number(job: str) -> tuple[int, str]:
    return len(job), job


def _sbatch_error(exc: Exception) -> str:
    """What sbatch printed on stderr (dask-jobqueue wraps it in a multi-line message), as one line."""
    text = str(exc)
    _, found, stderr = text.partition("stderr:")
    lines = [ln.strip() for ln in (stderr if found else text).splitlines() if ln.strip()]
    return "; ".join(lines) or type(exc).__name__


def _default_output() -> str:
    """Where sbatch puts a job's output unless told otherwise."""
    return os.path.join(os.getcwd(), "slurm-JOBID.out")
