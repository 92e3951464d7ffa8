"""SAM's automatic mask generator ("segment everything") on cached features: no image encoder.

``generate`` runs the pipeline of upstream's ``SamAutomaticMaskGenerator`` / ``SAM2AutomaticMaskGenerator``
over the full image (``crop_n_layers=0``): a grid of single-point prompts, three masks each, kept when SAM's
predicted IoU is above ``pred_iou_thresh`` and the mask's stability score reaches ``stability_score_thresh``,
deduplicated by box NMS, optionally cleaned of small holes and islands; each mask as upstream's record
(COCO RLE ``segmentation``, ``area``, ``bbox`` XYWH, ``predicted_iou``, ``point_coords``, ``stability_score``,
``crop_box``), ordered as upstream orders them.

What differs is where the work happens: the grids of several images share decoder calls (the budget measured
from free memory), masks failing the IoU threshold are never upsampled, and stability, boxes and run lengths
are computed on the device, one host copy per chunk. Crop layers above 0 would need the encoder's features of
every crop (upstream calls ``set_image`` on each), which the cache does not hold: they are refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torchvision.ops import batched_nms

from samcache.errors import SamcacheError, setting
from samcache.evaluation.mask_records import (coco_rle, mask_boxes, point_grid, remove_small_regions, rle_area,
                                              rle_to_mask, run_lengths, stability_scores)

UPSCALE_CHUNK = 16  # masks upsampled to the original size at once (16 x 2048 x 1024 float32: 128 MiB)
MAX_STEP = 1024  # prompts per step at most (768 MiB of low-res logits); the decoder's budget chunks each step
CROP_NMS_THRESH = 0.7  # upstream's crop_nms_thresh default: the small-region pass's NMS uses max(box, crop)


@dataclass(frozen=True)
class GeneratorSettings:
    """Upstream's options, with its names (defaults: the family's ``Family.mask_generator``).
    ``points_per_batch``: prompts per decoder call (None: as many as measured memory allows); results do not
    depend on it."""

    points_per_side: int = 32
    points_per_batch: int | None = None
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0
    crop_n_layers: int = 0

    @classmethod
    def for_family(cls, family, **options) -> "GeneratorSettings":
        """The family's upstream defaults, overridden by ``options`` (None values keep the default)."""
        if family.mask_generator is None:
            raise SamcacheError(f"{family.title} has no automatic mask generator upstream; `everything` decodes "
                                f"caches of SAM 1 and SAM 2.1")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise SamcacheError(f"unknown mask generator option {unknown[0]!r} (known: {', '.join(sorted(known))})")
        chosen = {**family.mask_generator, **{k: v for k, v in options.items() if v is not None}}
        return cls(**chosen).checked()

    def checked(self) -> "GeneratorSettings":
        if self.crop_n_layers != 0:
            raise SamcacheError(f"{setting('crop_n_layers')} {self.crop_n_layers}: crops need the image encoder's "
                                f"features of every crop, which the cache does not hold (it has the full "
                                f"image's); only 0 is supported")
        if self.points_per_side < 1 or (self.points_per_batch is not None and self.points_per_batch < 1):
            raise SamcacheError(f"{setting('points_per_side')} and {setting('points_per_batch')} must be at least 1")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SamcacheError(f"{setting(name)} {getattr(self, name)} is outside [0, 1]")
        if self.stability_score_offset < 0 or self.min_mask_region_area < 0:
            raise SamcacheError(f"{setting('stability_score_offset')} and {setting('min_mask_region_area')} must "
                                f"not be negative")
        return self

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageFrame:
    """One image of a batch: its row in the stacked features, original (H, W) and input-frame (h, w)."""

    slot: int
    size: tuple[int, int]
    input_size: tuple[int, int]


@dataclass
class _Kept:
    """One image's masks that passed the thresholds so far, in upstream's order (point by point, 3 each)."""

    rles: list
    boxes: list
    iou: list
    stability: list
    points: list


@torch.inference_mode()
def generate(decoder, features: dict[str, torch.Tensor], images: list[ImageFrame],
             settings: GeneratorSettings) -> list[list[dict]]:
    """Every image's masks as upstream's ``generate(image)`` returns them with ``output_mode="coco_rle"``.

    ``decoder``: an ``evaluation.decoding.Decoder``; ``features``: {name: (M,C,h,w)} on its device; ``images``:
    which row each image is and its sizes. All images' grids are decoded together, ``points_per_batch`` (or the
    measured budget) prompts per call."""
    grid = point_grid(settings.points_per_side)
    device = decoder.device
    originals = [grid * np.array(im.size[::-1], dtype=np.float64)[None] for im in images]  # (n², 2) [x, y]
    frames = np.concatenate([decoder.to_frame(pts, im.size) for pts, im in zip(originals, images)])
    coords = torch.as_tensor(frames, dtype=torch.float, device=device)[:, None]  # (P,1,2)
    owner = np.repeat(np.arange(len(images)), len(grid))
    slots = torch.as_tensor([images[i].slot for i in owner], device=device)
    labels = torch.ones((len(owner), 1), dtype=torch.int, device=device)
    kept = [_Kept([], [], [], [], []) for _ in images]
    # prompts decoded per step: their low-res logits (3 x 256 x 256 float32 = 768 KiB each) stay until measured
    step = settings.points_per_batch or min(MAX_STEP, max(64, decoder.budget or 0))
    for start in range(0, len(owner), step):
        part = slice(start, start + step)
        logits, scores = decoder.decode(features, slots[part], coords[part], labels[part], None, True)
        c = logits.shape[1]
        prompt = np.repeat(np.arange(start, min(start + step, len(owner))), c)
        logits, scores = logits.flatten(0, 1), scores.flatten(0, 1)
        passed = (scores > settings.pred_iou_thresh if settings.pred_iou_thresh > 0
                  else torch.ones_like(scores, dtype=torch.bool)).cpu().numpy()
        for i in np.unique(owner[prompt]):
            mine = np.flatnonzero((owner[prompt] == i) & passed)
            _measure(decoder, logits, scores, mine, prompt, originals[i], len(grid) * i, images[i], settings, kept[i])
    return [_records(k, im, settings, decoder.backend.cleans_final_masks) for k, im in zip(kept, images)]


def _measure(decoder, logits, scores, mine: np.ndarray, prompt: np.ndarray, points: np.ndarray, first: int,
             image: ImageFrame, settings: GeneratorSettings, kept: _Kept) -> None:
    """Upsample the masks ``mine`` of one image, keep the stable ones: their RLEs, boxes, scores and points."""
    backend, threshold = decoder.backend, decoder.family.mask_threshold
    for s in range(0, len(mine), UPSCALE_CHUNK):
        index = torch.as_tensor(mine[s: s + UPSCALE_CHUNK], device=logits.device)
        low = logits[index]
        if settings.min_mask_region_area > 0:
            low = backend.fill_small_regions(low, settings.min_mask_region_area)
        full = backend.postprocess(low[:, None], image.input_size, image.size)[:, 0]  # (k,H,W) logits
        stability = stability_scores(full, threshold, settings.stability_score_offset)
        stable = (stability >= settings.stability_score_thresh if settings.stability_score_thresh > 0
                  else torch.ones_like(stability, dtype=torch.bool))
        masks = full[stable] > threshold
        kept.rles += run_lengths(masks)
        kept.boxes.append(mask_boxes(masks))
        kept.iou.append(scores[index][stable])
        kept.stability.append(stability[stable])
        chosen = mine[s: s + UPSCALE_CHUNK][stable.cpu().numpy()]
        kept.points.append(points[prompt[chosen] - first])
        # crop box == image: upstream's near-crop-edge filter removes nothing, so it is not computed


def _records(kept: _Kept, image: ImageFrame, settings: GeneratorSettings, cleans_final_masks: bool) -> list[dict]:
    """NMS over one image's kept masks, the small-region pass (SAM 1's generator), then upstream's records."""
    if not kept.rles:
        return []
    boxes, iou = torch.cat(kept.boxes), torch.cat(kept.iou).float()
    stability, points = torch.cat(kept.stability), np.concatenate(kept.points)
    order = batched_nms(boxes.float(), iou, torch.zeros(len(boxes), device=boxes.device),
                        settings.box_nms_thresh).cpu().numpy()
    rles = [kept.rles[k] for k in order]
    boxes, iou, stability, points = boxes[order].cpu(), iou[order].cpu(), stability[order].cpu(), points[order]
    if settings.min_mask_region_area > 0 and cleans_final_masks:
        rles, boxes, order = _small_regions(rles, boxes, settings)
        iou, stability, points = iou[order], stability[order], points[order]
    h, w = image.size
    records = []
    for k, rle in enumerate(rles):
        x0, y0, x1, y1 = (int(v) for v in boxes[k])
        records.append({"segmentation": coco_rle(rle), "area": rle_area(rle), "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "predicted_iou": float(iou[k]), "point_coords": [points[k].tolist()],
                        "stability_score": float(stability[k]), "crop_box": [0, 0, int(w), int(h)]})
    return records


def _small_regions(rles: list[dict], boxes: torch.Tensor, settings: GeneratorSettings):
    """Upstream's ``postprocess_small_regions``: fill small holes, drop small islands, then NMS once more, now
    preferring masks the pass left unchanged. Returns (rles, boxes, the kept positions), in NMS order."""
    area = settings.min_mask_region_area
    masks, unchanged = [], []
    for rle in rles:
        mask, holes = remove_small_regions(rle_to_mask(rle), area, "holes")
        mask, islands = remove_small_regions(mask, area, "islands")
        masks.append(torch.from_numpy(np.ascontiguousarray(mask)))
        unchanged.append(float(not (holes or islands)))
    stacked = torch.stack(masks)
    new_boxes = mask_boxes(stacked)
    keep = batched_nms(new_boxes.float(), torch.as_tensor(unchanged), torch.zeros(len(rles)),
                       max(settings.box_nms_thresh, CROP_NMS_THRESH)).numpy()
    out_rles, out_boxes = [], []
    for k in keep:
        changed = unchanged[k] == 0.0
        out_rles.append(run_lengths(stacked[k: k + 1])[0] if changed else rles[k])
        out_boxes.append(new_boxes[k] if changed else boxes[k])
    return out_rles, torch.stack(out_boxes) if out_boxes else boxes[:0], keep


def masks_of(records: list[dict]) -> np.ndarray:
    """Records' COCO RLEs -> (K,H,W) bool masks, in the records' order (pycocotools decodes them)."""
    from pycocotools import mask as mask_utils

    if not records:
        return np.zeros((0, 0, 0), dtype=bool)
    encoded = [{"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()} for r in records]
    return np.moveaxis(mask_utils.decode(encoded), -1, 0).astype(bool)




def everything(cache, split: str = "val", image_id: str | int = 0, checkpoint=None, device=None,
               **options) -> list[dict]:
    """One cached image's masks, as upstream's ``SamAutomaticMaskGenerator(sam, output_mode="coco_rle",
    **options).generate(image)`` (or SAM 2.1's) returns them: a list of dicts. ``cache``: a path, a ``Cache``, or
    a ``Decoder`` (reused across calls); ``checkpoint``: the cache's (none for random-weight caches);
    ``options``: upstream's names (points_per_side, pred_iou_thresh, stability_score_thresh,
    stability_score_offset, box_nms_thresh, min_mask_region_area, points_per_batch, crop_n_layers=0)."""
    from samcache.evaluation.decoding import Decoder, device_features

    decoder = cache if isinstance(cache, Decoder) else Decoder(cache, checkpoint, device,
                                                               split=split if isinstance(split, str) else None)
    settings = GeneratorSettings.for_family(decoder.family, **options)
    target = decoder.split_of(split)
    row = target.row_of(image_id)
    features = device_features([target.features(row)], decoder.device)
    frame = ImageFrame(0, tuple(int(v) for v in target.original_size(row)),
                       tuple(int(v) for v in target.input_size(row)))
    return generate(decoder, features, [frame], settings)[0]
