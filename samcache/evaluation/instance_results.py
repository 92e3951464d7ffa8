"""cityscapesScripts' instance-level result format, so its evalInstanceLevelSemanticLabeling scores AP.

Per image ``<image_id>_pred.txt`` (the evaluator finds it by ``<city>_<seq>_<frame>*.txt``), one line
per instance: ``masks/<image_id>_<k>.png <labelId> <confidence>``, the path relative to the text file;
each mask PNG is 8-bit, non-zero inside the instance. Masks are written first and the text file last,
each atomically, so a killed run never leaves a text file naming a missing mask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from samcache.errors import SamcacheError
from samcache.evaluation.concepts import confidence_order
from samcache.fileio import write_text, write_with

MASK_DIR = "masks"


def instance_file(out_dir: str | Path, image_id: str) -> Path:
    return Path(out_dir) / f"{image_id}_pred.txt"


def write_instances(out_dir: str | Path, image_id: str, masks: np.ndarray, label_ids: np.ndarray,
                    confidences: np.ndarray) -> Path:
    """(K,H,W) bool masks, (K,) official labelIds and (K,) confidences -> the image's text file.

    Instances are listed by decreasing confidence. Everything is checked before anything is written.
    """
    masks, label_ids, confidences = np.asarray(masks), np.asarray(label_ids), np.asarray(confidences, np.float64)
    if masks.ndim != 3 or masks.dtype != bool:
        raise SamcacheError(f"instance masks must be (K, H, W) bool, got {masks.shape} {masks.dtype}")
    if not (len(masks) == len(label_ids) == len(confidences)):
        raise SamcacheError(f"{len(masks)} masks, {len(label_ids)} label ids, {len(confidences)} confidences")
    if len(confidences) and not (np.isfinite(confidences).all() and (confidences >= 0).all()):
        raise SamcacheError("instance confidences must be finite and >= 0")
    if any(c in image_id for c in "/\\ ") or not image_id:
        raise SamcacheError(f"image id {image_id!r} cannot name a result file")
    out_dir = Path(out_dir)
    (out_dir / MASK_DIR).mkdir(parents=True, exist_ok=True)
    lines = []
    for rank, k in enumerate(confidence_order(confidences)):
        name = f"{MASK_DIR}/{image_id}_{rank:04d}.png"
        pixels = Image.fromarray(masks[k].astype(np.uint8) * 255, mode="L")
        write_with(out_dir / name, lambda tmp, im=pixels: im.save(tmp, format="PNG"))
        lines.append(f"{name} {int(label_ids[k])} {confidences[k]:.6f}\n")
    path = instance_file(out_dir, image_id)
    write_text(path, "".join(lines))
    return path
