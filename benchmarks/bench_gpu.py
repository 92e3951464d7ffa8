"""`make bench-gpu`: samcache on one GPU against the seed's way, in one run, in under 10 minutes.

Synthetic 2048x1024 Cityscapes-format data and random-init ViT-H saved as an official-format
checkpoint (speed does not depend on the weight values). Rows:
  (a) the seed's way: upstream SamPredictor.set_image in a loop, fp32, batch 1;
  (b) samcache extract end to end (PNG decode, encoder, Zarr write), bf16 + SDPA, automatic batch
      size, without and with --compile; img/s and the fraction of the measured bf16 matmul peak;
  (c) zero-shot prompts/s from the GPU cache, IoU at original resolution included;
  (d) one head epoch over 2,975 GPU-preloaded images, and the evaluation of 500;
  (e) peak GPU memory of each row;
  (f) SAM 2.1 Hiera-L against ViT-H: extract img/s and cache MiB/image (random-init, official format).
Prints one table and appends it to benchmarks/RESULTS.md with the GPU's name.
(g), (h): SAM 3 trunk extraction and text prompts (benchmarks/bench_gpu_sam3.py).
``--smoke`` runs every row at toy size with the tiny model (CPU allowed): a check that this file works.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import OUT, machine
from samcache.cache.reader import open_cache
from samcache.cache.schema import Fingerprint
from samcache.cache.writer import prepare_split, write_image
from samcache.data.cityscapes import list_images, read_image
from samcache.data.synth import write_synthetic
from samcache.features.device import configure_matmul
from benchmarks.common import encode
from samcache.features.models import build_random_sam, build_sam
from samcache.pipeline.configs import EvaluateConfig, ExtractConfig, HeadConfig, ZeroShotConfig
from samcache.pipeline.evaluate import run_evaluate as evaluate_head
from samcache.pipeline.extract import extract
from samcache.pipeline.runs import format_table
from samcache.pipeline.train_head import train_head
from samcache.pipeline.zero_shot import run_zero_shot

RESULTS = Path(__file__).parent / "RESULTS.md"
FULL = dict(model="vit_h", sam2="sam2.1_hiera_l", size=(2048, 1024), unique=32, images=256, seed_images=12,
            train=2975, val=500, head_batch=32)
SMOKE = dict(model="tiny", sam2="sam2.1_hiera_t", size=(512, 256), unique=4, images=8, seed_images=2, train=12, val=4,
             head_batch=4)


def replicate_data(root: Path, unique: int, images: int, size: tuple[int, int]) -> Path:
    """``images`` Cityscapes-format files made of ``unique`` synthetic scenes (hard links: decode cost is real)."""
    if (root / "leftImg8bit" / "train").is_dir() and len(list_images(root, "train")) == images:
        return root
    shutil.rmtree(root, ignore_errors=True)
    scenes = root.parent / f"{root.name}-scenes"
    if not (scenes / "samcache-synth.json").exists():
        write_synthetic(scenes, {"train": unique}, size=size, seed=0, progress=False)
    source = list_images(scenes, "train")
    for k in range(images):
        rec = source[k % unique]
        new_id = f"bench_{k:06d}_000019"
        for kind, path in (("leftImg8bit", rec.image_path), ("gtFine", rec.label_path), ("gtFine", rec.instance_path)):
            target = root / kind / "train" / "bench" / path.name.replace(rec.image_id, new_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return root


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


def encoder_flops(encoder: torch.nn.Module, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    image = torch.zeros((1, 3, 1024, 1024), dtype=torch.uint8, device=device)
    with FlopCounterMode(display=False) as counter:
        encode(encoder, image, torch.tensor([[1024, 1024]]), "bf16" if device.type == "cuda" else "fp32")
    return float(counter.get_total_flops())


class Rows:
    def __init__(self, device: torch.device):
        self.rows, self.device = [], device

    def reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> str:
        return f"{torch.cuda.max_memory_allocated() / 2**30:.1f}" if self.device.type == "cuda" else "-"

    def add(self, row: str, metric: str, value, peak: bool = True) -> None:
        self.rows.append({"row": row, "metric": metric, "value": value, "peak_gib": self.peak_gib() if peak else ""})
        print(f"  {row}: {metric} = {value}", flush=True)


def seed_way(p: dict, checkpoint: Path, data: Path, device: torch.device, rows: Rows) -> float:
    """(a) upstream SamPredictor.set_image per image, fp32 (TF32 off), batch 1, as the seed did."""
    from segment_anything import SamPredictor, sam_model_registry

    configure_matmul(device, "fp32")
    sam = (sam_model_registry[p["model"]](checkpoint=str(checkpoint)) if p["model"] != "tiny"
           else build_random_sam("tiny", 0)).to(device)
    predictor = SamPredictor(sam)
    records = list_images(data, "train")[: p["seed_images"] + 1]
    predictor.set_image(read_image(records[0].image_path))  # warm-up
    rows.reset_peak()
    t0 = time.perf_counter()
    for rec in records[1:]:
        predictor.set_image(read_image(rec.image_path))
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = p["seed_images"] / (time.perf_counter() - t0)
    rows.add("(a) seed: SamPredictor.set_image loop, fp32, batch 1", "img/s", f"{rate:.2f}")
    del sam, predictor
    return rate


def extraction(p: dict, checkpoint: Path | None, data: Path, out: Path, device: torch.device, rows: Rows,
               compile_model: bool, flops: float, peak: float, seed_rate: float) -> Path:
    """(b) samcache extract end to end, bf16 + SDPA, automatic batch size."""
    cache = out / f"extract-{'compile' if compile_model else 'eager'}.zarr"
    shutil.rmtree(cache, ignore_errors=True)
    rows.reset_peak()
    result = extract(ExtractConfig(data=str(data), cache=str(cache), split="train", model_type=p["model"],
                                   checkpoint=str(checkpoint) if checkpoint else None, device=str(device),
                                   num_workers=max(1, min(14, (os.cpu_count() or 2) - 2)), compile=compile_model),
                     progress=False)
    name = f"(b) samcache extract, {'bf16' if device.type == 'cuda' else 'fp32'} + SDPA, auto batch" + \
           (", --compile" if compile_model else "")
    rows.add(name, "img/s end to end", f"{result.img_per_s:.2f}")
    if not compile_model:
        rows.add(name, "cache MiB/image (features + labels)", f"{result.bytes_on_disk / result.n_done / 2**20:.2f}",
                 peak=False)
    encoder_rate = 1 / result.encoder_seconds_per_image
    rows.add(name, "img/s encoder only", f"{encoder_rate:.2f}", peak=False)
    rows.add(name, "x seed's way (end to end)", f"{result.img_per_s / seed_rate:.1f}", peak=False)
    if np.isfinite(peak):
        rows.add(name, "fraction of measured bf16 peak", f"{result.img_per_s * flops / 1e12 / peak:.2f}", peak=False)
    return cache


def zero_shot(cache: Path, out: Path, device: torch.device, rows: Rows) -> None:
    """(c) per-instance prompts from the GPU cache, IoU at original resolution included."""
    rows.reset_peak()
    record = run_zero_shot(ZeroShotConfig(cache=str(cache), split="train", prompt="per-instance", device=str(device),
                                          out=str(out / "zero-shot"), overwrite=True, visualize=0,
                                          num_workers=max(1, min(14, (os.cpu_count() or 2) - 2))), progress=False)
    rows.add("(c) zero-shot per-instance, best-score", "prompts/s", f"{record['prompts_per_s']:.0f}")
    rows.add("(c) zero-shot per-instance, best-score", "prompts, prompt budget",
             f"{record['prompts']}, {record['prompt_budget']}", peak=False)


def replicated_cache(source: Path, target: Path, train: int, val: int) -> Path:
    """A cache of ``train`` + ``val`` rows cycling through the extracted ones (the head sees real embeddings)."""
    src = open_cache(source).split("train")
    fp = src.fingerprint
    emb, labels, inst = src.embeddings[:], src.labels[:], src.instances[:]
    size = tuple(int(v) for v in src.original_sizes[0])
    shutil.rmtree(target, ignore_errors=True)
    for split, n in (("train", train), ("val", val)):
        ids = [f"bench_{k:06d}_000019" for k in range(n)]
        prepared = prepare_split(str(target), split, ids, [size] * n, Fingerprint(**fp.to_attrs()),
                                 src.attrs["data_root"], "zstd", present_ids=set(ids))
        arrays = {name: prepared.group[name] for name in ("embeddings", "labels", "instances", "done")}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: write_image(arrays, k, {"embeddings": emb[k % len(emb)]}, labels[k % len(emb)],
                                                inst[k % len(emb)]), range(n)))
    return target


def head(cache: Path, out: Path, device: torch.device, rows: Rows, batch: int, train: int, val: int) -> None:
    """(d) one epoch over GPU-preloaded train, then evaluate the val split."""
    rows.reset_peak()
    preload = "gpu" if device.type == "cuda" else "ram"
    record = train_head(HeadConfig(cache=str(cache), out=str(out / "head"), overwrite=True, epochs=1,
                                   batch_size=batch, preload=preload, device=str(device), visualize=0,
                                   num_workers=0, precision="bf16" if device.type == "cuda" else "fp32"),
                        progress=False)
    rows.add(f"(d) head epoch, {train} images preloaded ({preload})", "seconds", f"{record['train_seconds']:.2f}")
    rows.reset_peak()
    t0 = time.perf_counter()
    evaluate_head(EvaluateConfig(head=str(out / "head" / "head_epoch_1.pt"), cache=str(cache), device=str(device),
                                 out=str(out / "eval"), overwrite=True, num_workers=4), progress=False)
    rows.add(f"(d) evaluate {val} images", "seconds", f"{time.perf_counter() - t0:.2f}")


def sam2_extraction(p: dict, data: Path, out: Path, device: torch.device, rows: Rows) -> None:
    """(f) SAM 2.1 end to end beside (b): same data, automatic batch, bf16 on CUDA."""
    from samcache.features.sam2 import SAM2_MODEL_TYPES, build_sam2

    checkpoint = out / SAM2_MODEL_TYPES[p["sam2"]].checkpoint.replace(".pt", "_random.pt")
    if not checkpoint.exists():
        torch.save({"model": build_sam2(p["sam2"], None, 0, allow_random=True)[0].state_dict()}, checkpoint)
    cache = out / "extract-sam2.zarr"
    shutil.rmtree(cache, ignore_errors=True)
    rows.reset_peak()
    result = extract(ExtractConfig(data=str(data), cache=str(cache), split="train", model_type=p["sam2"],
                                   checkpoint=str(checkpoint), device=str(device),
                                   num_workers=max(1, min(14, (os.cpu_count() or 2) - 2))), progress=False)
    name = f"(f) {p['sam2']} extract, auto batch"
    rows.add(name, "img/s end to end", f"{result.img_per_s:.2f}")
    rows.add(name, "cache MiB/image (3 feature arrays + labels)",
             f"{result.bytes_on_disk / result.n_done / 2**20:.2f}", peak=False)


def main(smoke: bool) -> None:
    p = SMOKE if smoke else FULL
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not smoke:
        raise SystemExit("make bench-gpu needs a CUDA GPU (try --smoke to check the script on a CPU)")
    out = OUT / ("gpu-smoke" if smoke else "gpu")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"bench-gpu on {machine()}", flush=True)
    data = replicate_data(out / "data", p["unique"], p["images"], p["size"])
    checkpoint = None
    if p["model"] != "tiny":
        checkpoint = out / f"sam_{p['model']}_random.pth"  # official format: a state dict saved with torch.save
        if not checkpoint.exists():
            torch.save(build_random_sam(p["model"], 0).state_dict(), checkpoint)
    rows = Rows(device)
    sam, _ = build_sam(p["model"], checkpoint, allow_random=True)
    flops = encoder_flops(sam.image_encoder.to(device), device)
    del sam
    peak = peak_bf16_tflops(device)
    rows.add("ceiling", "measured bf16 matmul TFLOP/s (8192^3)", f"{peak:.0f}", peak=False)
    rows.add("ceiling", "encoder GFLOP per image (FlopCounterMode)", f"{flops / 1e9:.0f}", peak=False)
    seed_rate = seed_way(p, checkpoint, data, device, rows)
    cache = extraction(p, checkpoint, data, out, device, rows, False, flops, peak, seed_rate)
    extraction(p, checkpoint, data, out, device, rows, True, flops, peak, seed_rate)
    zero_shot(cache, out, device, rows)
    big = replicated_cache(cache, out / "head.zarr", p["train"], p["val"])
    head(big, out, device, rows, p["head_batch"], p["train"], p["val"])
    sam2_extraction(p, data, out, device, rows)
    from benchmarks.bench_gpu_sam3 import sam3_rows

    sam3_rows("sam3_tiny" if smoke else "sam3", [r.image_path for r in list_images(data, "train")][:p["images"]],
              device, rows, batch=2 if smoke else 8, text_batch=2 if smoke else 4)
    table = format_table(rows.rows, ["row", "metric", "value", "peak_gib"])
    print("\n" + table + f"\n\nbench-gpu took {time.perf_counter() - t_start:.0f} s")
    if not smoke:
        with open(RESULTS, "a") as f:
            f.write(f"\n## make bench-gpu, {dt.date.today().isoformat()}\n\nMachine: {machine()}\n"
                    f"Random-init ViT-H weights (speed does not depend on them); synthetic 2048x1024 data.\n\n"
                    f"```\n{table}\n```\n")
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="toy size, tiny model, CPU allowed")
    main(parser.parse_args().smoke)
