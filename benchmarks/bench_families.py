"""SAM 2.1 beside SAM 1, on this CPU, in one run: extract img/s and cache MiB/image.

sam2.1_hiera_t against vit_b, both random-init and saved in their official checkpoint formats
(speed and stored bytes do not depend on the weight values much: random features compress
about like real ones, which is an assumption worth re-checking on real weights).
"""

from __future__ import annotations

import shutil

import torch

from benchmarks.common import OUT, synth_data
from samcache.features.sam1.build import build_random_sam
from samcache.pipeline.configs import ExtractConfig, HeadConfig
from samcache.pipeline.extract import extract
from samcache.pipeline.train_head import train_head

IMAGES, VAL_IMAGES, HEAD_EPOCHS = 4, 2, 5


def _checkpoints() -> dict[str, str]:
    from samcache.features.sam2.build import build_sam2

    paths = {"vit_b": OUT / "sam_vit_b_random.pth", "sam2.1_hiera_t": OUT / "sam2.1_hiera_tiny_random.pt"}
    if not paths["vit_b"].exists():
        torch.save(build_random_sam("vit_b", 0).state_dict(), paths["vit_b"])
    if not paths["sam2.1_hiera_t"].exists():
        torch.save({"model": build_sam2("sam2.1_hiera_t", None, 0, allow_random=True)[0].state_dict()},
                   paths["sam2.1_hiera_t"])
    return {k: str(v) for k, v in paths.items()}


def run() -> list[dict]:
    data = synth_data(IMAGES, VAL_IMAGES)
    rows = []
    for model, checkpoint in _checkpoints().items():
        cache = OUT / f"bench_family_{model}.zarr"
        shutil.rmtree(cache, ignore_errors=True)
        for split in ("val", "train"):  # the train result is the one reported
            result = extract(ExtractConfig(data=str(data), cache=str(cache), split=split, model_type=model,
                                           checkpoint=checkpoint, device="cpu", batch_size=1, num_workers=1),
                             progress=False)
        rows += [{"benchmark": "families", "metric": f"{model}: extract img/s (CPU fp32, 2048x1024, float16 zstd)",
                  "value": f"{result.img_per_s:.3f}"},
                 {"benchmark": "families", "metric": f"{model}: cache MiB/image (features + labels)",
                  "value": f"{result.bytes_on_disk / result.n_done / 2**20:.2f}"}]
    return rows + _heads(str(OUT / "bench_family_sam2.1_hiera_t.zarr"))


def _heads(cache: str) -> list[dict]:
    """The 64x64 head against the multiscale one on the same SAM 2.1 cache (RANDOM weights: the numbers
    show what each costs and that both train, not which is better on real features)."""
    rows = []
    for head in ("main", "multiscale"):
        record = train_head(HeadConfig(cache=cache, out=str(OUT / f"head-{head}"), overwrite=True, head=head,
                                       epochs=HEAD_EPOCHS, batch_size=2, width=64, device="cpu", num_workers=0,
                                       visualize=0), progress=False)
        rows.append({"benchmark": "families", "metric": f"sam2.1_hiera_t head {head}: val mIoU after {HEAD_EPOCHS} "
                     f"epochs, s/epoch (RANDOM weights)",
                     "value": f"{record['miou']:.3f}, {record['train_seconds'] / HEAD_EPOCHS:.1f}"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
