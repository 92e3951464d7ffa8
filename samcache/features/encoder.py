"""The image encoder forward: batched, under inference_mode, with optional autocast."""

from __future__ import annotations

import contextlib
import re

import torch

from samcache.errors import SamcacheError
from samcache.features.preprocess import normalize_padded

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


DEVICE_NAME = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device_name(device: str) -> None:
    if not isinstance(device, str) or not DEVICE_NAME.match(device):
        raise SamcacheError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when present, else cpu; a CUDA device that is not there is a one-line error."""
    check_device_name(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SamcacheError(f"--device {device} was requested but no CUDA device is available")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise SamcacheError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    return torch.device(device)


def autocast(device: torch.device, precision: str):
    if precision not in PRECISIONS:
        raise SamcacheError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


PASSES = {"images": 0}  # image-encoder passes in this process; stage records report the count they caused


@torch.inference_mode()
def encode(image_encoder: torch.nn.Module, images_uint8: torch.Tensor, input_sizes: torch.Tensor,
           precision: str = "fp32") -> torch.Tensor:
    """(B,3,1024,1024) uint8 padded images -> (B,256,64,64) float32 embeddings."""
    device = next(image_encoder.parameters()).device
    x = normalize_padded(images_uint8.to(device, non_blocking=True), input_sizes)
    with autocast(device, precision):
        embeddings = image_encoder(x).float()
    PASSES["images"] += len(embeddings)
    return embeddings


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    import os
    import platform

    return f"cpu:{platform.machine()}x{os.cpu_count()}"
