"""No process outlives the command; Ctrl-C stops at once with advice that is true for the command."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from samcache.data.synth import write_synthetic


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory):
    """Enough images that extraction is still running when the test acts."""
    root = tmp_path_factory.mktemp("slow")
    write_synthetic(root, {"train": 16}, size=(1024, 512), seed=2, progress=False)
    return root


def _start(args, tmp_path):
    return subprocess.Popen([sys.executable, "-m", "samcache.pipeline.cli", *map(str, args)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait(predicate, what: str, seconds: float = 120) -> None:
    """Poll for a state (never a fixed sleep): a busy machine only makes it arrive later."""
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"never reached: {what}")
        time.sleep(0.05)


def _children_when_running(proc, n):
    """The command's DataLoader workers, once ``n`` of them have done some work (used CPU time)."""
    def working():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended early: {proc.communicate()[1][-500:]}")
        kids = psutil.Process(proc.pid).children(recursive=True)
        return len(kids) >= n and all(k.cpu_times().user > 0.05 for k in kids[:n])

    _wait(working, f"{n} DataLoader workers at work")
    return psutil.Process(proc.pid).children(recursive=True)


def _gone_within(procs, seconds):
    gone, alive = psutil.wait_procs(procs, timeout=seconds)
    for p in alive:
        p.kill()
    return not alive


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_dataloader_workers_die_with_the_main_process(slow_data, tmp_path, sig):
    proc = _start(["extract", "--data", slow_data, "--cache", tmp_path / "c.zarr", "--split", "train",
                   "--model-type", "tiny", "--num-workers", "2", "--batch-size", "1", "--quiet"], tmp_path)
    workers = _children_when_running(proc, 2)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=60)
    assert _gone_within(workers, 5), "DataLoader workers outlived the command"
    if sig == signal.SIGTERM:  # handled like Ctrl-C: exit 143, advice, finished images kept
        assert proc.returncode == 143


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_extract_quickly_with_true_advice(slow_data, tmp_path):
    proc = _start(["extract", "--data", slow_data, "--cache", tmp_path / "c.zarr", "--split", "train",
                   "--model-type", "tiny", "--num-workers", "2", "--batch-size", "1", "--quiet"], tmp_path)
    workers = _children_when_running(proc, 2)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does: the whole process group
    _, err = proc.communicate(timeout=60)
    print(f"extract exited {time.time() - t0:.2f} s after Ctrl-C")  # a measurement, not a test: see README
    assert proc.returncode == 130
    assert "images already marked done are kept: re-run the same command to resume" in err
    assert "Traceback" not in err
    assert _gone_within(workers, 5)
    again = subprocess.run([sys.executable, "-m", "samcache.pipeline.cli", "extract", "--data", str(slow_data),
                            "--cache", str(tmp_path / "c.zarr"), "--split", "train", "--model-type", "tiny",
                            "--num-workers", "0", "--quiet"], capture_output=True, text=True)
    assert again.returncode == 0 and "16/16 done" in again.stdout  # the advice was true


@pytest.mark.slow
def test_ctrl_c_during_training_says_how_to_continue(cache16, tmp_path):
    out = tmp_path / "head"
    proc = _start(["train-head", "--cache", cache16, "--out", out, "--epochs", "200", "--batch-size", "2",
                   "--width", "16", "--preload", "off", "--num-workers", "2", "--device", "cpu", "--quiet"], tmp_path)
    _wait(lambda: (out / "head_epoch_1.pt").exists(), "the first checkpoint")
    workers = psutil.Process(proc.pid).children(recursive=True)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    print(f"train-head exited {time.time() - t0:.2f} s after Ctrl-C")
    assert proc.returncode == 130 and "Traceback" not in err
    assert f"kept in {out}: continue with `samcache train-head --resume {out}`" in err
    last = max(int(p.stem.rsplit("_", 1)[1]) for p in out.glob("head_epoch_*.pt"))
    assert ("epoch 1 is kept" if last == 1 else f"epochs 1-{last} are kept") in err  # what is on disk
    assert _gone_within(workers, 5)


def test_ctrl_c_while_starting_is_one_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "samcache", "zero-shot", "--cache", tmp_path / "c.zarr", "--out",
                             tmp_path / "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    # interrupt while it is still importing: once torch's library is mapped, the command has not started its work
    # (the CLI itself imports no torch; a command imports what it runs on when it runs)
    def loading_torch():
        try:
            return any("libtorch" in m.path for m in psutil.Process(proc.pid).memory_maps())
        except psutil.NoSuchProcess:
            raise AssertionError("the command ended before it was interrupted") from None

    _wait(loading_torch, "torch being loaded")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "interrupted" in err and not (tmp_path / "run").exists()
