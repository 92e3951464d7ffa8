"""Phase 2: epoch time from the cache against the seed's way (encoder in the loop, batch 2).

Ours is measured on a synthetic float16 cache and scaled per image to Cityscapes train
(2975 images); the seed's way runs a random-init ViT-B encoder + the same head on a batch
of 2 and is scaled the same way. Also: loader samples/s (Zarr vs preloaded) and peak RSS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import torch
from torch.nn import functional as F

from benchmarks.common import OUT, synth_data, timer
from samcache.evaluation.datasets import CacheHeadDataset
from samcache.evaluation.training_data import iterate, preload
from samcache.data.cityscapes import list_images, read_image
from samcache.data.labels import IGNORE, get_class_set
from benchmarks.common import encode
from samcache.features.head import SemanticHead
from samcache.features.sam1.build import build_random_sam
from samcache.features.frames import to_frame
from samcache.features.sam1.preprocess import resize_and_pad_uint8
from samcache.pipeline.configs import ExtractConfig, HeadConfig
from samcache.pipeline.extract import extract
from samcache.pipeline.train_head import train_head

N_TRAIN, CITYSCAPES_TRAIN, BATCH = 24, 2975, 16
PRELOAD_BYTES = 2975 * (2 * 256 * 64 * 64 + 1024 ** 2) + 500 * (2 * 256 * 64 * 64 + 2048 * 1024)

RSS_CODE = """
import json, sys
from samcache.pipeline.configs import HeadConfig
from samcache.pipeline.train_head import train_head
train_head(HeadConfig(cache=sys.argv[1], out=sys.argv[2], overwrite=True, epochs=1, batch_size=16, preload=sys.argv[3],
                      num_workers=1, device="cpu", visualize=0), progress=False)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec from this (large) parent process
print(json.dumps([int(ln.split()[1]) * 1024 for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]))
"""


def _cache() -> str:
    data = synth_data(N_TRAIN, 8)
    cache = OUT / "bench_head.zarr"
    if not (cache / "val").exists():
        shutil.rmtree(cache, ignore_errors=True)
        for split in ("train", "val"):
            extract(ExtractConfig(data=str(data), cache=str(cache), split=split, model_type="tiny", device="cpu",
                                  num_workers=1, dtype="float16"), progress=False)
    return str(cache)


def run() -> list[dict]:
    cache = _cache()
    rows = []
    epoch_s = {}
    for mode in ("ram", "off"):
        rec = train_head(HeadConfig(cache=cache, out=str(OUT / f"head-{mode}"), overwrite=True, epochs=2,
                                    batch_size=BATCH,
                                    preload=mode, num_workers=1, device="cpu", visualize=0), progress=False)
        epoch_s[mode] = rec["train_seconds"] / rec["epochs"] / rec["train_images"] * CITYSCAPES_TRAIN

    # the seed's way: ViT-B encoder inside the loop, batch 2, same head
    vit_b = build_random_sam("vit_b", seed=0)
    cs = get_class_set("seed5")
    head = SemanticHead(cs.num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    images = [resize_and_pad_uint8(read_image(r.image_path)) for r in list_images(synth_data(N_TRAIN, 8), "train")[:2]]
    x, sizes = torch.stack([i for i, _ in images]), torch.tensor([hw for _, hw in images])
    target = torch.full((2, 1024, 1024), IGNORE, dtype=torch.long)
    target[:, :512] = 0
    with timer() as t_seed:
        emb = encode(vit_b.image_encoder, x, sizes).clone()
        loss = F.cross_entropy(to_frame(head(emb), (1024, 1024)), target, ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seed_epoch = t_seed["s"] / 2 * CITYSCAPES_TRAIN

    # loader efficiency: samples/s through the Zarr-backed DataLoader vs from preloaded tensors
    ds = CacheHeadDataset(cache, "train", cs)
    order = list(range(len(ds)))
    with timer() as t_zarr:
        for _ in iterate(ds, None, order, BATCH, 2, torch.device("cpu")):
            pass
    mem = preload(ds, torch.device("cpu"))
    with timer() as t_mem:
        for _ in iterate(ds, mem, order, BATCH, 0, torch.device("cpu")):
            pass
    zarr_sps, mem_sps = len(ds) / t_zarr["s"], len(ds) / t_mem["s"]

    rss = {}
    for mode in ("off", "ram"):
        out = subprocess.run([sys.executable, "-c", RSS_CODE, cache, str(OUT / f"rss-{mode}"), mode],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rss[mode] = json.loads(out) / 2**20

    rows += [
        {"benchmark": "head", "metric": "seed's way: ViT-B (random) in the loop, batch 2, CPU, per epoch",
         "value": f"{seed_epoch / 3600:.1f} h (extrapolated from one batch)"},
        {"benchmark": "head", "metric": "from the cache, preloaded (ram), batch 16, CPU, per epoch",
         "value": f"{epoch_s['ram'] / 60:.1f} min ({seed_epoch / epoch_s['ram']:.0f}x faster)"},
        {"benchmark": "head", "metric": "from the cache, DataLoader over Zarr, batch 16, CPU, per epoch",
         "value": f"{epoch_s['off'] / 60:.1f} min ({seed_epoch / epoch_s['off']:.0f}x faster)"},
        {"benchmark": "head", "metric": "training samples/s: Zarr DataLoader / preloaded (goal >= 0.8)",
         "value": f"{epoch_s['ram'] / epoch_s['off']:.2f}"},
        {"benchmark": "head", "metric": "raw loader samples/s, no training: Zarr (2 workers) vs preloaded",
         "value": f"{zarr_sps:.0f} vs {mem_sps:.0f} ({zarr_sps / mem_sps:.2f})"},
        {"benchmark": "head", "metric": f"peak RSS, {N_TRAIN}+8 images, batch 16: --preload off vs ram",
         "value": f"{rss['off']:.0f} MiB vs {rss['ram']:.0f} MiB"},
        {"benchmark": "head", "metric": "preload size for Cityscapes train+val (float16 + targets + val labels)",
         "value": f"{PRELOAD_BYTES / 2**30:.1f} GiB"},
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
