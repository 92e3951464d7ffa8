"""Stage 1: extraction img/s against a bare loop of image_encoder(x) on preprocessed tensors.

Both use the same tiny model, batch size and threads, in one run. The bare loop is the
upper bound: no PNG decode, no resize, no label reads, no compression, no disk.
"""

from __future__ import annotations

import shutil

import torch

from benchmarks.common import OUT, synth_data, timer
from samcache.data.cityscapes import list_images, read_image
from benchmarks.common import encode
from samcache.features.sam1.build import build_random_sam, build_sam
from samcache.features.sam1.preprocess import resize_and_pad_uint8
from samcache.pipeline.configs import ExtractConfig
from samcache.pipeline.extract import extract

N_IMAGES = 16
VIT_B_IMAGES = 4
BATCH = 2
REPEATS = 2  # interleaved; the best of each side is reported (timing noise on a shared CPU)


def run() -> list[dict]:
    data = synth_data(N_IMAGES, 0)
    sam, _ = build_sam("tiny", seed=0)
    records = list_images(data, "train")
    tensors = [resize_and_pad_uint8(read_image(r.image_path)) for r in records]
    batches = [(torch.stack([t for t, _ in tensors[i:i + BATCH]]),
                torch.tensor([hw for _, hw in tensors[i:i + BATCH]])) for i in range(0, N_IMAGES, BATCH)]
    encode(sam.image_encoder, *batches[0])  # warm-up
    cache = OUT / "bench_extract.zarr"
    cfg = ExtractConfig(data=str(data), cache=str(cache), split="train", model_type="tiny", device="cpu",
                        batch_size=BATCH, num_workers=1, dtype="float16")
    bare_ips, results = 0.0, []
    for _ in range(REPEATS):
        with timer() as bare:
            for x, sizes in batches:
                encode(sam.image_encoder, x, sizes)
        bare_ips = max(bare_ips, N_IMAGES / bare["s"])
        shutil.rmtree(cache, ignore_errors=True)
        results.append(extract(cfg, progress=False))
    result = max(results, key=lambda r: r.img_per_s)
    ratio = result.img_per_s / bare_ips
    return _vit_b_rows(data) + [
        {"benchmark": "extract", "metric": "bare image_encoder loop (tiny, CPU, 2048x1024 src)",
         "value": f"{bare_ips:.2f} img/s"},
        {"benchmark": "extract", "metric": "samcache extract (decode+encode+write, float16)",
         "value": f"{result.img_per_s:.2f} img/s"},
        {"benchmark": "extract", "metric": "ratio extract / bare (goal >= 0.9)", "value": f"{ratio:.2f}"},
        {"benchmark": "extract", "metric": "bytes/image on disk (float16, default codec)",
         "value": f"{result.bytes_on_disk / result.n_done / 2**20:.2f} MiB"},
    ]


def _vit_b_rows(data) -> list[dict]:
    """ViT-B (random init, official-format checkpoint): samcache extract (SDPA, decode and write included)
    against a loop of upstream's image_encoder on preprocessed tensors (upstream attention), batch 1."""
    checkpoint = OUT / "sam_vit_b_random.pth"
    if not checkpoint.exists():
        torch.save(build_random_sam("vit_b", 0).state_dict(), checkpoint)
    upstream = build_random_sam("vit_b", 0).image_encoder  # segment-anything's own modules
    records = list_images(data, "train")[:VIT_B_IMAGES]
    tensors = [resize_and_pad_uint8(read_image(r.image_path)) for r in records]
    with timer() as loop:
        for x, hw in tensors:
            encode(upstream, x[None], torch.tensor([hw]))
    loop_ips = VIT_B_IMAGES / loop["s"]
    cache = OUT / "bench_extract_vit_b.zarr"
    shutil.rmtree(cache, ignore_errors=True)
    result = extract(ExtractConfig(data=str(data), cache=str(cache), split="train", model_type="vit_b",
                                   checkpoint=str(checkpoint), device="cpu", batch_size=1, num_workers=1,
                                   limit=VIT_B_IMAGES), progress=False)
    return [
        {"benchmark": "extract", "metric": "vit_b: loop of upstream image_encoder (CPU fp32, batch 1)",
         "value": f"{loop_ips:.3f} img/s"},
        {"benchmark": "extract", "metric": "vit_b: samcache extract, SDPA (decode+encode+write)",
         "value": f"{result.img_per_s:.3f} img/s"},
        {"benchmark": "extract", "metric": "vit_b: ratio extract SDPA / upstream loop (goal >= 1.3)",
         "value": f"{result.img_per_s / loop_ips:.2f}"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
