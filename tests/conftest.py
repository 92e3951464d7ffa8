"""Shared fixtures: one small synthetic Cityscapes set and tiny-model caches built once per session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: kills, full disks, real clusters: `make test-slow` (make test skips "
                                       "them to stay within 6 minutes on 2 cores)")

SIZE = (512, 256)  # WxH; the encoder input is 1024x512 whatever the original size
N_TRAIN, N_VAL = 6, 3


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    from samcache.data.synth import write_synthetic

    root = tmp_path_factory.mktemp("synth")
    write_synthetic(root, {"train": N_TRAIN, "val": N_VAL}, size=SIZE, seed=0, progress=False)
    return root


def extract_cfg(data, cache, split, **kw):
    from samcache.pipeline.configs import ExtractConfig

    base = dict(data=str(data), cache=str(cache), split=split, model_type="tiny", batch_size=1,
                num_workers=0, device="cpu", dtype="float32", attention="upstream")  # bit-exact with upstream
    base.update(kw)
    return ExtractConfig(**base)


@pytest.fixture(scope="session")
def cache32(synth_root, tmp_path_factory) -> Path:
    """float32 cache of train + val, batch size 1 (the bit-exact reference)."""
    from samcache.pipeline.extract import extract

    cache = tmp_path_factory.mktemp("cache") / "c32.zarr"
    for split in ("train", "val"):
        extract(extract_cfg(synth_root, cache, split), progress=False)
    return cache


@pytest.fixture(scope="session")
def cache16(synth_root, tmp_path_factory) -> Path:
    from samcache.pipeline.extract import extract

    cache = tmp_path_factory.mktemp("cache") / "c16.zarr"
    for split in ("train", "val"):
        extract(extract_cfg(synth_root, cache, split, dtype="float16", batch_size=3, num_workers=1), progress=False)
    return cache


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> tuple[Path, str]:
    """`samcache demo` made small (4 train + 2 val images at 512x256, 1 epoch): its folder and what it printed.
    Made once per test session, whichever pytest-xdist worker asks first (the others wait for it and read it:
    the tests only read and copy it)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out, printed = shared / "shared-demo" / "demo", shared / "shared-demo" / "stdout.txt"
    with FileLock(str(shared / "shared-demo.lock")):
        if not printed.exists():
            out.parent.mkdir(exist_ok=True)
            proc = run_cli("demo", "--out", out, "--train", 4, "--val", 2, "--size", "512x256", "--epochs", 1,
                           "--model-type", "auto", check=True)
            printed.write_text(proc.stdout)
    return out, printed.read_text()


@pytest.fixture(scope="session")
def vit_b_checkpoint(tmp_path_factory):
    """A random-init vit_b (random relative-position tables too) saved as the official checkpoints are."""
    import torch

    from samcache.features.sam1.build import build_random_sam

    sam = build_random_sam("vit_b", seed=0)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # upstream zero-initialises these, which would hide a wrong bias
        for block in sam.image_encoder.blocks:
            block.attn.rel_pos_h.normal_(0.0, 0.5, generator=gen)
            block.attn.rel_pos_w.normal_(0.0, 0.5, generator=gen)
    path = tmp_path_factory.mktemp("ckpt") / "sam_vit_b_random.pth"
    torch.save(sam.state_dict(), path)
    return path, sam


ARRAYS = ("embeddings", "labels", "instances", "image_ids", "original_sizes", "input_sizes", "done")


def assert_same_split(a: Path, b: Path, split: str) -> None:
    """Every array of ``split`` equal between two stores, read with plain zarr."""
    import numpy as np
    import zarr

    ga, gb = zarr.open_group(str(a), mode="r")[split], zarr.open_group(str(b), mode="r")[split]
    for name in ARRAYS:
        assert np.array_equal(ga[name][:], gb[name][:]), name


def done_count(cache: Path, split: str) -> int:
    import zarr

    try:
        return int(zarr.open_group(str(cache), mode="r")[split]["done"][:].sum())
    except Exception:  # not created yet
        return 0


def run_cli(*args, check=False, timeout=600) -> subprocess.CompletedProcess:
    """The real console entry point in a subprocess, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "samcache.pipeline.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"samcache {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(line) == 1, proc.stderr
    for needle in needles:
        assert needle in line[0], line[0]
    return line[0]


def invoke(*args, cwd: Path | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """The CLI in this process (click's CliRunner): fast, for errors that stop before any real work."""
    from click.testing import CliRunner

    from samcache.pipeline.cli import cli

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True, prog_name="samcache")
    finally:
        os.chdir(old)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        stderr = "".join(traceback.format_exception(result.exception)) + result.stderr
    else:
        stderr = result.stderr
    if check and result.exit_code != 0:
        raise AssertionError(f"samcache {' '.join(map(str, args))} failed:\n{result.stdout}\n{stderr}")
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, stderr)


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file below ``path`` with its bytes: 'nothing was written' compares two snapshots."""
    path = Path(path)
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def copy_split(src: Path, dst: Path, split: str) -> Path:
    """A private copy of one split of a Cityscapes-format folder (tests damage it)."""
    import shutil

    for part in ("leftImg8bit", "gtFine"):
        shutil.copytree(Path(src) / part / split, Path(dst) / part / split)
    return Path(dst)


SAM2_MODEL = "sam2.1_hiera_t"


@pytest.fixture(scope="session")
def sam2_checkpoint(tmp_path_factory):
    """A random-init SAM 2.1 Hiera-T saved in the official format ({"model": state_dict})."""
    import torch

    from samcache.features.sam2.build import build_sam2

    model, _ = build_sam2(SAM2_MODEL, None, seed=0, allow_random=True)
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_hiera_tiny_random.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def sam2_cache(synth_root, sam2_checkpoint, tmp_path_factory):
    """float32 SAM 2.1 cache of the val split, from the official-format random checkpoint."""
    from samcache.pipeline.extract import extract

    cache = tmp_path_factory.mktemp("sam2cache") / "s2.zarr"
    extract(extract_cfg(synth_root, cache, "val", model_type=SAM2_MODEL, checkpoint=str(sam2_checkpoint),
                        batch_size=2), progress=False)
    return cache


@pytest.fixture(scope="session")
def sam3_cache(synth_root, tmp_path_factory):
    """float32 sam3_tiny cache of the first val image, made by the CLI (random weights, seed 0)."""
    pytest.importorskip("sam3")
    cache = tmp_path_factory.mktemp("sam3cache") / "s3.zarr"
    invoke("extract", "--data", synth_root, "--cache", cache, "--split", "val", "--model-type", "sam3_tiny",
           "--dtype", "float32", "--num-workers", "0", "--limit", "1", "--quiet", check=True)
    return cache


@pytest.fixture(scope="session")
def s3():
    """moto's S3 server on 127.0.0.1 (a free port), this process's AWS_* variables pointing at it."""
    pytest.importorskip("moto.server", reason="moto[server] is a dev requirement: `make test` installs it")
    import s3_server

    server = s3_server.start()
    old = s3_server.apply_env(server)
    yield server
    s3_server.restore_env(old)
    server.stop()
