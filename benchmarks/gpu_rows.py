"""The GPU benchmark's rows that measure one model directly (not through a samcache stage)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from samcache.data.cityscapes import list_images, read_image
from samcache.features.families import backend_for
from samcache.features.device import configure_matmul

GRID = 4  # correctness: GRID x GRID point prompts over the image


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _upstream_sam(model_type: str, checkpoint: Path | None, device: torch.device):
    from segment_anything import sam_model_registry

    from samcache.features.sam1.build import build_random_sam

    sam = sam_model_registry[model_type](checkpoint=str(checkpoint)) if checkpoint else build_random_sam(model_type, 0)
    return sam.to(device).eval()


def correctness(model_type: str, checkpoint: Path | None, data: Path, device: torch.device) -> list:
    """samcache's bf16 + SDPA encoder against upstream SamPredictor in fp32 (TF32 off), one full-size image:
    max relative difference of the embeddings, and IoU of the masks decoded from each by upstream predict."""
    from segment_anything import SamPredictor

    image = read_image(list_images(data, "train")[0].image_path)
    configure_matmul(device, "fp32")
    predictor = SamPredictor(_upstream_sam(model_type, checkpoint, device))
    predictor.set_image(image)
    reference = predictor.features.clone()
    backend = backend_for(model_type)
    encoder, _ = backend.build_encoder(model_type, checkpoint, 0, allow_random=True, attention="sdpa")
    encoder = encoder.to(device).eval()
    precision = "bf16" if device.type == "cuda" else "fp32"
    configure_matmul(device, precision)
    prepared, size = backend.prepare(image)
    ours = backend.encode(encoder, prepared[None], torch.tensor([size]), precision)["embeddings"]
    rel = float((ours - reference).abs().max() / reference.abs().max())
    h, w = image.shape[:2]
    ious = []
    for y in np.linspace(0, h, GRID + 2)[1:-1]:
        for x in np.linspace(0, w, GRID + 2)[1:-1]:
            masks = []
            for features in (reference, ours):
                predictor.features = features
                m, _, _ = predictor.predict(np.array([[x, y]]), np.array([1]), multimask_output=False)
                masks.append(m[0])
            union = np.logical_or(*masks).sum()
            ious.append(1.0 if union == 0 else float(np.logical_and(*masks).sum() / union))
    configure_matmul(device, "auto")
    return [(f"embedding max abs(ours - fp32) / max abs(fp32), ours in {precision}", f"{rel:.2e}"),
            (f"mask IoU bf16 vs fp32, {len(ious)} point prompts: mean / min", f"{np.mean(ious):.4f} / {min(ious):.4f}")]


def compile_speed(model_type: str, checkpoint: Path | None, size: tuple[int, int], batch: int,
                  device: torch.device, reps: int = 3) -> list:
    """The encoder alone at one batch shape: eager and torch.compile img/s, both after warm-up; the first
    compiled call's extra time is the compile time, reported apart."""
    backend = backend_for(model_type)
    encoder, _ = backend.build_encoder(model_type, checkpoint, 0, allow_random=True, attention="sdpa")
    encoder = encoder.to(device).eval()
    precision = "bf16" if device.type == "cuda" else "fp32"
    images, sizes = backend.dummy_batch(batch, (size[1], size[0]))
    images = images.to(device)

    def timed(model) -> float:
        _sync(device)
        t0 = time.perf_counter()
        backend.encode(model, images, sizes, precision)
        _sync(device)
        return time.perf_counter() - t0

    timed(encoder)  # warm-up
    eager = min(timed(encoder) for _ in range(reps))
    compiled = torch.compile(encoder, dynamic=False)
    first = timed(compiled)
    steady = min(timed(compiled) for _ in range(reps))
    return [(f"eager img/s, batch {batch}", f"{batch / eager:.2f}"),
            (f"compiled img/s, batch {batch} (after warm-up)", f"{batch / steady:.2f}"),
            ("compile s (first call minus a steady one)", f"{first - steady:.1f}"),
            ("compiled / eager", f"{eager / steady:.2f}")]


def peak_bf16_tflops(device: torch.device) -> float:
    """Measured dense bf16 matmul rate (8192^3), the ceiling the encoder is compared with."""
    if device.type != "cuda":
        return float("nan")
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (start.elapsed_time(end) / 1e3) / 1e12


def encoder_gflop(model_type: str, checkpoint: Path | None, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    backend = backend_for(model_type)
    encoder, _ = backend.build_encoder(model_type, checkpoint, 0, allow_random=True, attention="sdpa")
    images, sizes = backend.dummy_batch(1, (1024, 1024))
    with FlopCounterMode(display=False) as counter:
        backend.encode(encoder.to(device), images, sizes, "bf16" if device.type == "cuda" else "fp32")
    return counter.get_total_flops() / 1e9


def sam2_extract(model_type: str, data: Path, out: Path, device: torch.device, images: int, workers: int) -> list:
    """SAM 2.1 end to end on the same data: automatic batch, bf16 on CUDA, random official-format weights."""
    from samcache.features.sam2 import VARIANTS
    from samcache.features.sam2.build import build_sam2
    from samcache.pipeline.configs import ExtractConfig
    from samcache.pipeline.extract import extract

    checkpoint = out / VARIANTS[model_type].checkpoint.replace(".pt", "_random.pt")
    if not checkpoint.exists():
        torch.save({"model": build_sam2(model_type, None, 0, allow_random=True)[0].state_dict()}, checkpoint)
    cache = out / "extract-sam2.zarr"
    shutil.rmtree(cache, ignore_errors=True)
    result = extract(ExtractConfig(data=str(data), cache=str(cache), split="train", model_type=model_type,
                                   checkpoint=str(checkpoint), device=str(device), num_workers=workers, limit=images),
                     progress=False)
    return [("img/s end to end", f"{result.img_per_s:.2f}"),
            ("cache MiB/image (3 feature arrays + labels)", f"{result.bytes_on_disk / result.n_done / 2**20:.2f}")]


def seed_way(model_type: str, checkpoint: Path | None, data: Path, device: torch.device, images: int) -> list:
    """Upstream SamPredictor.set_image per image, fp32 (TF32 off), batch 1, as the seed did."""
    from segment_anything import SamPredictor

    configure_matmul(device, "fp32")
    predictor = SamPredictor(_upstream_sam(model_type, checkpoint, device))
    records = list_images(data, "train")[: images + 1]
    predictor.set_image(read_image(records[0].image_path))  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for rec in records[1:]:
        predictor.set_image(read_image(rec.image_path))
    _sync(device)
    configure_matmul(device, "auto")
    return [("img/s", f"{images / (time.perf_counter() - t0):.2f}")]
