"""Phase 1: batched decoding from the cache against a loop of SamPredictor.predict, one prompt each.

The prompt encoder and mask decoder are the same for tiny and ViT-H, so decoder speed measured
with tiny weights is what a ViT-H cache gets. Then: a whole Phase 1 pass from the cache against
the seed's way (encoder per image + predict per class), the encoder being a random-init ViT-B
timed on a few images and extrapolated to Cityscapes val (500 images).
"""

from __future__ import annotations

import shutil

import numpy as np
import torch
from segment_anything import SamPredictor

from benchmarks.common import OUT, synth_data, timer
from samcache.cache.reader import open_cache
from samcache.data.cityscapes import list_images, read_image
from samcache.data.labels import IGNORE, get_class_set
from samcache.evaluation.metrics import masked_counts
from samcache.features.families import backend_for
from samcache.features.decoder import CPU_DECODE_CHUNK
from benchmarks.common import encode
from samcache.features.models import build_random_sam
from samcache.features.preprocess import resize_and_pad_uint8
from samcache.evaluation.prompts import image_prompts
from samcache.pipeline.configs import ExtractConfig, ZeroShotConfig
from samcache.pipeline.extract import extract
from samcache.pipeline.zero_shot import choose_masks, decode_batch, run_zero_shot

N_IMAGES = 4
VAL_IMAGES = 500


def _cache() -> str:
    data = synth_data(16, 0)
    cache = OUT / "bench_zero_shot.zarr"
    shutil.rmtree(cache, ignore_errors=True)
    extract(ExtractConfig(data=str(data), cache=str(cache), split="train", model_type="tiny", device="cpu",
                          limit=N_IMAGES, num_workers=1, dtype="float16"), progress=False)
    return str(cache)


def run() -> list[dict]:
    cache = _cache()
    split = open_cache(cache).split("train")
    cs = get_class_set("seed5")
    sam = build_random_sam("tiny", seed=0)
    backend = backend_for("sam")
    decoder, _ = backend.build_decoder("tiny", None, 0, allow_random=True)
    work = []
    for r in range(N_IMAGES):
        gt = cs.to_index(split.labels[r])
        prompts = image_prompts("per-instance", cs, gt, split.instances[r].astype(np.int32), np.random.default_rng(r))
        work.append((r, gt, [(0, c, p) for c, p in prompts]))
    n_prompts = sum(len(e) for _, _, e in work)

    def ours():
        """What zero-shot does per image: batched decode, pick by score, upsample the chosen masks, IoU."""
        for r, gt, entries in work:
            features = {"embeddings": torch.from_numpy(split.embedding(r).astype(np.float32))[None]}
            size = tuple(int(v) for v in split.original_sizes[r])
            logits, scores = decode_batch(backend, decoder, features, entries, [size], True, CPU_DECODE_CHUNK)
            class_map = torch.from_numpy(gt)
            classes = torch.tensor([c for _, c, _ in entries])
            masks, _ = choose_masks(backend, logits, scores, "best-score", class_map[None] == classes.view(-1, 1, 1),
                                    class_map != IGNORE, split.input_sizes[r], size)
            masked_counts(masks, class_map[None] == classes.view(-1, 1, 1), class_map != IGNORE)

    def upstream():
        for r, gt, entries in work:
            p = SamPredictor(sam)
            p.features = torch.from_numpy(split.embedding(r).astype(np.float32))[None]
            p.original_size, p.input_size = tuple(split.original_sizes[r]), tuple(split.input_sizes[r])
            p.is_image_set = True
            for _, c, prompt in entries:
                masks, scores, _ = p.predict(prompt.points, prompt.point_labels, multimask_output=True)
                best = masks[int(np.argmax(scores))]
                valid = gt != IGNORE
                np.count_nonzero(best & (gt == c) & valid), np.count_nonzero((best | (gt == c)) & valid)

    ours()  # warm-up
    with timer() as t_up:
        upstream()
    with timer() as t_ours:
        ours()
    speedup = t_up["s"] / t_ours["s"]

    zs = run_zero_shot(ZeroShotConfig(cache=cache, split="train", prompt="random", out=str(OUT / "zs-run"),
                                      overwrite=True, visualize=0, device="cpu"), progress=False)
    ours_per_image = zs["seconds"] / zs["images"]
    vit_b = build_random_sam("vit_b", seed=0)
    records = list_images(synth_data(16, 0), "train")[:2]
    x = [resize_and_pad_uint8(read_image(r.image_path)) for r in records]
    with timer() as t_enc:
        for img, hw in x:
            encode(vit_b.image_encoder, img[None], torch.tensor([hw]))
    enc_per_image = t_enc["s"] / len(x)
    seed_per_image = enc_per_image + t_up["s"] / n_prompts * (zs["prompts"] / zs["images"])
    return [
        {"benchmark": "zero-shot", "metric": f"upstream SamPredictor.predict loop ({n_prompts} prompts, 2048x1024)",
         "value": f"{n_prompts / t_up['s']:.1f} prompts/s"},
        {"benchmark": "zero-shot", "metric": "samcache batched decode + one upsample per image",
         "value": f"{n_prompts / t_ours['s']:.1f} prompts/s"},
        {"benchmark": "zero-shot", "metric": "speed-up batched / upstream loop (goal >= 3)",
         "value": f"{speedup:.2f}x"},
        {"benchmark": "zero-shot", "metric": "random-init ViT-B encoder, CPU", "value": f"{enc_per_image:.2f} s/img"},
        {"benchmark": "zero-shot", "metric": f"Phase 1 over {VAL_IMAGES} val images: seed way (ViT-B encode + predict)",
         "value": f"{seed_per_image * VAL_IMAGES / 60:.1f} min (extrapolated)"},
        {"benchmark": "zero-shot", "metric": f"Phase 1 over {VAL_IMAGES} val images: from the cache (whole run)",
         "value": f"{ours_per_image * VAL_IMAGES / 60:.1f} min ({seed_per_image / ours_per_image:.0f}x less)"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
