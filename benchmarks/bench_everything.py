"""`everything` (SAM's automatic mask generator) from the cache against upstream's ``generate()``, same images.

Three ways over the same images of one cache split, back to back in one process:
  (a) samcache: ``evaluation.everything.generate`` over the split, the grids of ``images_per_batch`` images
      sharing decoder calls (as the `everything` stage: 1 image per batch on a CPU, 8 on CUDA), the prompt
      budget from measured memory, filtering, boxes and run lengths on the device;
  (b) upstream ``SamAutomaticMaskGenerator`` / ``SAM2AutomaticMaskGenerator(model, output_mode="coco_rle")``
      ``.generate(image)`` as users run it: its ``set_image`` runs the image encoder;
  (c) the same upstream generator object with its predictor's ``set_image`` replaced by
      ``samcache.set_precomputed`` (the cached maps go in, the encoder never runs): (c) / (a) isolates what
      batching and on-device filtering save, (b) / (a) is what a user gains.
Images are read before the clocks start (all three get them from memory); (a) and (c) read their features from the
cache inside the clock. The sides take turns batch by batch, after an untimed warm-up (``compare``). CPU runs use a
small grid and few images (``POINTS_PER_SIDE``, ``IMAGES``); bench_gpu runs the same three at 2048x1024 with
points_per_side 32, 8 images per batch (``gpu_rows``). Random weights keep nothing at upstream's default thresholds
(0.88 / 0.95: the comparison would measure skipped work), so the main rows use pred_iou_thresh 0 and
stability_score_thresh 0; one row gives upstream's defaults, labelled as such. (a) and (c) must give the same
number of masks per image: checked in the run, reported as "same" or "DIFFER".
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import OUT, synth_data, timer

SIZE = (1024, 512)  # CPU: a quarter of Cityscapes' pixels (full size on the GPU: bench_gpu)
IMAGES = {"tiny": 2, "vit_b": 1, "sam2.1_hiera_t": 2}  # ViT-B: its encoder alone takes ~20 s per image on the CPU
# CPU: 16 prompts per image (upstream's default is 32: 1,024). The mask decoder runs a few prompts per second
# on 2 shared cores (bench_zero_shot), so a 16 x 16 grid would take minutes per image and side.
POINTS_PER_SIDE = 4
UPSTREAM_POINTS_PER_BATCH = 64  # upstream's default
LOW = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}  # random weights keep masks


@dataclass(frozen=True)
class Case:
    """One cache split to compare on: its weights (``checkpoint`` None for random-seed caches) and options."""

    label: str
    cache: str
    split: str
    checkpoint: str | None
    options: dict = field(default_factory=dict)  # upstream's names, besides points_per_side


def _upstream_generator(predictor, options: dict):
    """Upstream's generator for the predictor's family, around the model samcache checked against the cache."""
    kwargs = dict(output_mode="coco_rle", points_per_batch=UPSTREAM_POINTS_PER_BATCH, crop_n_layers=0, **options)
    if type(predictor).__name__ == "SamPredictor":
        from segment_anything import SamAutomaticMaskGenerator

        return SamAutomaticMaskGenerator(predictor.model, **kwargs)
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    return SAM2AutomaticMaskGenerator(predictor.model, **kwargs)


def _on_cached_features(generator, split):
    """``generator`` whose predictor, asked to ``set_image``, takes the current image's cached maps instead
    (set ``generator.cached_id`` before each ``generate``)."""
    from samcache.cache.predictors import set_precomputed

    predictor = generator.predictor
    predictor.set_image = lambda image: set_precomputed(predictor, split, generator.cached_id)
    return generator


def compare(case: Case, device: torch.device, images_per_batch: int, points_per_side: int,
            limit: int | None = None) -> dict:
    """Seconds per image of (a), (b), (c) over the split's first ``limit`` images, and masks per image. The
    sides take turns batch by batch (a, then b and c on the batch's images), so that a change of the machine's
    load falls on all three. Untimed first: (a) and (c) on a one-point grid (lazy initialisation, the measured
    prompt budget), and on CUDA (b) too (the encoder's first call; on a CPU it is no slower than the next)."""
    from samcache.cache.predictors import load_predictor
    from samcache.cache.reader import open_cache
    from samcache.evaluation.decoding import Decoder, device_features
    from samcache.evaluation.everything import GeneratorSettings, ImageFrame, generate

    split = open_cache(case.cache).split(case.split)
    rows = split.require_complete()[:limit]
    ids = [split.image_ids[r] for r in rows]
    pixels = [_image(split, i) for i in ids]
    options = {**case.options, "points_per_side": points_per_side}
    warm_options = {**options, "points_per_side": 1}
    decoder = Decoder(case.cache, case.checkpoint, device, split=case.split)

    def ours(batch_rows, settings) -> list[int]:
        features = device_features([split.features(r) for r in batch_rows], decoder.device)
        frames = [ImageFrame(k, tuple(int(v) for v in split.original_size(r)),
                             tuple(int(v) for v in split.input_size(r))) for k, r in enumerate(batch_rows)]
        return [len(m) for m in generate(decoder, features, frames, settings)]

    owner = load_predictor(split, case.checkpoint, device)  # upstream's model, with the weights that made the cache
    upstream = {"b": lambda opts: _upstream_generator(owner, opts),
                "c": lambda opts: _on_cached_features(_upstream_generator(owner, opts), split)}
    ours(rows[:1], GeneratorSettings.for_family(decoder.family, **warm_options))
    for side in ("b", "c") if device.type == "cuda" else ("c",):
        warm = upstream[side](warm_options)
        warm.cached_id = ids[0]
        warm.generate(pixels[0])
    settings = GeneratorSettings.for_family(decoder.family, **options)
    generators = {side: make(options) for side, make in upstream.items()}
    spent, masks = {"a": 0.0, "b": 0.0, "c": 0.0}, {"a": [], "b": [], "c": []}  # per side
    for start in range(0, len(rows), images_per_batch):
        batch = range(start, min(start + images_per_batch, len(rows)))
        with timer(device) as seconds:
            masks["a"] += ours([rows[k] for k in batch], settings)
        spent["a"] += seconds["s"]
        for side, generator in generators.items():
            with timer(device) as seconds:
                for k in batch:
                    generator.cached_id = ids[k]
                    masks[side].append(len(generator.generate(pixels[k])))
            spent[side] += seconds["s"]
    n = len(rows)
    return {**{side: total / n for side, total in spent.items()}, "masks_a": masks["a"], "masks_c": masks["c"],
            "images": n}


def _image(split, image_id) -> np.ndarray:
    """The image upstream's generate() is given, read before the clocks start."""
    from samcache.evaluation.visualize import source_image

    image = source_image(split, image_id)
    if image is None:
        raise FileNotFoundError(f"{split.cache_path}: the images of split {split.name} are no longer where it was "
                                f"extracted from")
    return image


def result_rows(label: str, r: dict) -> list[tuple[str, str]]:
    """(metric, value) pairs of one comparison, for make bench's table and bench_gpu's."""
    same = "same" if r["masks_a"] == r["masks_c"] else f"DIFFER: (c) {r['masks_c']}"
    return [(f"{label}: s/img (a) samcache | (b) upstream generate | (c) upstream on cached features",
             f"{r['a']:.3f} | {r['b']:.3f} | {r['c']:.3f}"),
            (f"{label}: b/a, c/a", f"{r['b'] / r['a']:.2f}x, {r['c'] / r['a']:.2f}x"),
            (f"{label}: masks per image (a), (c)", f"{' '.join(map(str, r['masks_a']))}, {same}")]


def default_thresholds(case: Case, device: torch.device, images_per_batch: int, points_per_side: int,
                       limit: int) -> tuple[str, str]:
    """One line at upstream's default thresholds: with random weights nothing passes them, so (a) upsamples
    nothing while upstream upsamples every mask before it filters; labelled as such."""
    r = compare(case, device, images_per_batch, points_per_side, limit)
    same = "same" if r["masks_a"] == r["masks_c"] else "DIFFER"
    images = f"{limit} image{'s' if limit > 1 else ''}"
    return (f"{case.label} at UPSTREAM'S DEFAULT thresholds ({images}): s/img a | b | c; b/a, c/a; masks (a) = (c)?",
            f"{r['a']:.3f} | {r['b']:.3f} | {r['c']:.3f}; {r['b'] / r['a']:.2f}x, {r['c'] / r['a']:.2f}x; "
            f"{sum(r['masks_a'])}, {same}")


def settings_text(points_per_side: int, images_per_batch: int, device: torch.device) -> str:
    return (f"points_per_side {points_per_side}, pred_iou_thresh 0, stability_score_thresh 0 (all rows but the "
            f"one at upstream's defaults), other options upstream's defaults (box_nms_thresh 0.7, "
            f"min_mask_region_area 0); (a) {images_per_batch} image(s) per batch, (b), (c) points_per_batch "
            f"{UPSTREAM_POINTS_PER_BATCH}; torch {torch.get_num_threads()} threads, {device}")


def gpu_rows(cache, checkpoint: str | None, model: str, device: torch.device, images: int, images_per_batch: int,
             points_per_side: int) -> list[tuple[str, str]]:
    """bench_gpu's row: the three ways on the first ``images`` of a cache's train split (its full-size images)."""
    case = Case(model, str(cache), "train", checkpoint, LOW)
    return ([("settings", settings_text(points_per_side, images_per_batch, device) + f"; {images} train images")]
            + result_rows(model, compare(case, device, images_per_batch, points_per_side, images))
            + [default_thresholds(Case(model, str(cache), "train", checkpoint), device, images_per_batch,
                                  points_per_side, images)])


def _cache(model: str, checkpoint: str | None, data: Path, images: int) -> str:
    from samcache.pipeline.configs import ExtractConfig
    from samcache.pipeline.extract import extract

    cache = OUT / f"bench_everything_{model}.zarr"
    shutil.rmtree(cache, ignore_errors=True)  # a bench cache is remade each run
    extract(ExtractConfig(data=str(data), cache=str(cache), split="val", model_type=model, checkpoint=checkpoint,
                          device="cpu", num_workers=0, batch_size=1, limit=images), progress=False)
    return str(cache)


def run(images_per_batch: int | None = None, models: tuple[str, ...] = ("tiny", "vit_b", "sam2.1_hiera_t")
        ) -> list[dict]:
    from benchmarks.bench_families import _checkpoints

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    per_batch = images_per_batch or (8 if device.type == "cuda" else 1)
    data = synth_data(0, max(IMAGES.values()), size=SIZE, name="everything")
    checkpoints = {"tiny": None, **_checkpoints()}
    load = os.getloadavg()[0]
    images = ", ".join(f"{m} {IMAGES[m]}" for m in models)
    out = [("settings (RANDOM weights)", settings_text(POINTS_PER_SIDE, per_batch, device) +
            f"; the first val images ({images}) at {SIZE[0]}x{SIZE[1]} (CPU: points_per_side, see the module)")]
    for model in models:
        cache = _cache(model, checkpoints[model], data, IMAGES[model])
        case = Case(model, cache, "val", checkpoints[model], LOW)
        out += result_rows(model, compare(case, device, per_batch, POINTS_PER_SIDE))
        if model == "tiny":
            out.append(default_thresholds(Case(model, cache, "val", None), device, per_batch, POINTS_PER_SIDE, 1))
    out.append(("load average (1 min) at start, end", f"{load:.1f}, {os.getloadavg()[0]:.1f}"))
    return [{"benchmark": "everything", "metric": m, "value": v} for m, v in out]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-batch", type=int, default=None,
                        help="images whose grids share decoder calls in (a) (default: 1 on a CPU, 8 on CUDA)")
    parser.add_argument("--model", action="append", default=None, help="tiny, vit_b, sam2.1_hiera_t (repeatable)")
    args = parser.parse_args()
    kwargs = {"models": tuple(args.model)} if args.model else {}
    for row in run(args.images_per_batch, **kwargs):
        print(row)
