"""Device and precision policy: where a model runs, in which precision, with how large a batch.

Precision is explicit: "auto" is bf16 on CUDA and fp32 on the CPU, and fp32 on a GPU means
true fp32 (TF32 off), since the cache fingerprint promises it. The batch size is taken from
free GPU memory when it is not given, by measuring what one more image costs.
"""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Callable

import torch

from samcache import choices
from samcache.choices import PRECISION_CHOICES, check_device_name
from samcache.errors import SamcacheError, setting
from samcache.features.memory import capacity

PRECISIONS = {name: dtype and getattr(torch, dtype) for name, dtype in choices.PRECISIONS.items()}  # autocast's
CPU_BATCH_SIZE = 4  # larger CPU batches gain nothing and hold more images in flight
MAX_BATCH_SIZE = 64
PASSES = {"images": 0}  # image-encoder passes in this process; stage records report the count they caused


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when present, else cpu; a CUDA device that is not there is a one-line error."""
    check_device_name(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SamcacheError(f"{setting('device')} {device} was requested but no CUDA device is available")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise SamcacheError(f"{setting('device')} {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on CUDA (the tensor cores' fast path), fp32 on the CPU."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise SamcacheError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    return precision


def configure_matmul(device: torch.device, precision: str) -> None:
    """fp32 on a GPU is fp32: cuBLAS and cuDNN would otherwise round matmul inputs to TF32."""
    if device.type == "cuda":
        tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[resolve_precision(precision, device)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def auto_batch_size(probe: Callable[[int], object], device: torch.device,
                    measure: Callable[[int], int] | None = None) -> int:
    """CPU: CPU_BATCH_SIZE. CUDA: what fits in free memory, from peaks of ``probe(n)`` and ``probe(2n)`` (memory.py)."""
    if device.type != "cuda":
        return CPU_BATCH_SIZE

    def counted(n: int) -> None:
        probe(n)
        PASSES["images"] -= n  # a probe, not an encoded image

    return capacity(counted, device, MAX_BATCH_SIZE, measure, what="images")


def maybe_compile(image_encoder: torch.nn.Module, compile_model: bool) -> torch.nn.Module:
    """torch.compile the encoder (first batch pays the compilation); a no-op when not asked for."""
    if not compile_model:
        return image_encoder
    return torch.compile(image_encoder, dynamic=False)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}x{os.cpu_count()}"
