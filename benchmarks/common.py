"""Shared helpers: a scratch dir with synthetic data, machine description, timing."""

from __future__ import annotations

import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

import torch

OUT = Path(__file__).parent / "out"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def synth_data(n_train: int, n_val: int, size=(2048, 1024), name: str = "data") -> Path:
    """Synthetic Cityscapes-format data, made once and reused across benchmark runs."""
    from samcache.data.synth import write_synthetic

    root = OUT / f"{name}-{n_train}-{n_val}-{size[0]}x{size[1]}"
    marker = root / ".complete"
    if not marker.exists():
        write_synthetic(root, {"train": n_train, "val": n_val}, size=size, seed=0, progress=False)
        marker.touch()
    return root


@contextmanager
def timer(device: torch.device | None = None):
    """Wall seconds of the block in ``box["s"]``; on a CUDA ``device`` the work it queued is waited for."""
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else lambda device: None
    box = {}
    sync(device)
    t0 = time.perf_counter()
    yield box
    sync(device)
    box["s"] = time.perf_counter() - t0


def encode(image_encoder, images_uint8, input_sizes, precision: str = "fp32"):
    """SAM 1: (B,3,1024,1024) uint8 padded images -> (B,256,64,64) float32 embeddings, as extract computes them."""
    from samcache.features.families import backend_for

    return backend_for("sam").encode(image_encoder, images_uint8, input_sizes, precision)["embeddings"]
