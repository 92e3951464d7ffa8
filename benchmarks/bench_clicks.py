"""Phase 1, interactive: `samcache clicks` against a loop of upstream SamPredictor.predict, in one run.

Both run the same protocol (center first click, best-score first mask, mask_input, next click in
the largest error region) on the same cached float32 embeddings of synthetic 2048x1024 scenes,
with the tiny model (its prompt encoder and mask decoder are SAM's real ones; the weights are
RANDOM, which changes the clicks but not the cost per click). The upstream side is the
straightforward script: per object, per click, ``predict`` (all masks upsampled), IoU and the
next click on the host.
"""

from __future__ import annotations

import shutil

import numpy as np
import torch
from segment_anything import SamPredictor

from benchmarks.common import OUT, synth_data, timer
from samcache.cache.reader import open_cache
from samcache.data.labels import get_class_set
from samcache.evaluation.clicks import first_click, iou, next_click, objects_for_image, valid_mask
from samcache.features.models import build_random_sam
from samcache.pipeline.clicks import run_clicks
from samcache.pipeline.configs import ClicksConfig, ExtractConfig
from samcache.pipeline.extract import extract

IMAGES, MAX_CLICKS = 3, 5


def _cache() -> str:
    data = synth_data(8, IMAGES)
    cache = OUT / "bench_clicks.zarr"
    if not (cache / "val").exists():
        shutil.rmtree(cache, ignore_errors=True)
        extract(ExtractConfig(data=str(data), cache=str(cache), split="val", model_type="tiny", device="cpu",
                              dtype="float32", num_workers=1), progress=False)
    return str(cache)


def upstream_loop(cache: str) -> tuple[int, float]:
    """The seed-style script: one SamPredictor.predict per object per click."""
    split = open_cache(cache).split("val")
    cs, sam = get_class_set("seed5"), build_random_sam("tiny", 0)
    clicks = 0
    with timer() as t:
        for row in range(IMAGES):
            predictor = SamPredictor(sam)
            predictor.features = torch.from_numpy(split.embedding(row))[None]
            predictor.original_size = tuple(int(v) for v in split.original_sizes[row])
            predictor.input_size = tuple(int(v) for v in split.input_sizes[row])
            predictor.is_image_set = True
            labels = split.labels[row]
            valid = valid_mask(labels, cs)
            for obj in objects_for_image(labels, split.instances[row].astype(np.int32), cs, min_area=100):
                points, low_res = [(*first_click(obj.mask), 1)], None
                for k in range(MAX_CLICKS):
                    coords = np.array([p[:2] for p in points], float)
                    point_labels = np.array([p[2] for p in points])
                    masks, scores, logits = predictor.predict(coords, point_labels, mask_input=low_res,
                                                              multimask_output=k == 0)
                    best = int(np.argmax(scores))
                    low_res = logits[best][None]
                    iou(masks[best], obj.mask, valid)
                    clicks += 1
                    if k + 1 < MAX_CLICKS:
                        click = next_click(masks[best], obj.mask, valid)
                        if click is None:
                            break
                        points.append(click)
    return clicks, t["s"]


def run() -> list[dict]:
    cache = _cache()
    up_clicks, up_s = upstream_loop(cache)
    record = run_clicks(ClicksConfig(cache=cache, split="val", max_clicks=MAX_CLICKS, device="cpu", visualize=0,
                                     num_workers=1, out=str(OUT / "clicks-run"), overwrite=True), progress=False)
    ours = record["clicks"] / record["seconds"]
    theirs = up_clicks / up_s
    return [
        {"benchmark": "clicks", "metric": f"upstream predict loop ({up_clicks} clicks, {IMAGES} images 2048x1024)",
         "value": f"{theirs:.2f} clicks/s"},
        {"benchmark": "clicks", "metric": f"samcache clicks ({record['clicks']} clicks, whole run)",
         "value": f"{ours:.2f} clicks/s"},
        {"benchmark": "clicks", "metric": "speed-up samcache / upstream loop (goal >= 2 on CPU)",
         "value": f"{ours / theirs:.2f}x"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
