"""What SAM's automatic mask generator computes of each mask, batched on the device.

The quantities are upstream's (``segment_anything.utils.amg``, copied into ``sam2.utils.amg``): the
stability score, the box around a mask, the uncompressed run-length encoding in column-major order, and
the removal of small holes and islands. Here a whole chunk of masks is measured with one device call, and
the run-length change points come back to the host with one copy per chunk instead of one per mask. Equal
to upstream's results: ``tests/test_everything_upstream.py``.
"""

from __future__ import annotations

import numpy as np
import torch


def point_grid(points_per_side: int) -> np.ndarray:
    """(n*n, 2) [x, y] in [0, 1]: cell centres of an n x n grid, row by row (upstream's ``build_point_grid``)."""
    offset = 1 / (2 * points_per_side)
    side = np.linspace(offset, 1 - offset, points_per_side)
    xs, ys = np.tile(side[None, :], (points_per_side, 1)), np.tile(side[:, None], (1, points_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def stability_scores(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """(K,H,W) logits -> (K,) IoU between the masks cut at threshold + offset and threshold - offset.
    Counted per row in int16 then summed in int32, as upstream (a row is at most 32767 pixels)."""
    inner = (logits > threshold + offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    outer = (logits > threshold - offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inner / outer


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(K,H,W) bool -> (K,4) int64 x0, y0, x1, y1 with x1, y1 the last covered column and row; [0,0,0,0] when
    empty (upstream's ``batched_mask_to_box``)."""
    k, h, w = masks.shape
    if k == 0:
        return torch.zeros((0, 4), dtype=torch.int64, device=masks.device)
    rows, cols = masks.any(dim=2), masks.any(dim=1)  # (K,H), (K,W)

    def extent(covered: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(n, device=masks.device)
        last = torch.where(covered, index, -1).amax(dim=1)
        first = torch.where(covered, index, n).amin(dim=1)
        return first, last

    top, bottom = extent(rows, h)
    left, right = extent(cols, w)
    boxes = torch.stack([left, top, right, bottom], dim=1)
    return boxes * (bottom >= top).unsqueeze(1)  # empty masks: all zero


def run_lengths(masks: torch.Tensor) -> list[dict]:
    """(K,H,W) bool on any device -> K uncompressed RLEs {"size": [H, W], "counts": [...]}: run lengths in
    column-major order, starting with a run of zeros (possibly empty). One device->host copy for all K."""
    k, h, w = masks.shape
    flat = masks.transpose(1, 2).reshape(k, h * w)
    changes = (flat[:, 1:] ^ flat[:, :-1]).nonzero().cpu().numpy()  # (n, 2): mask, position before a change
    first = flat[:, 0].cpu().numpy()
    bounds = np.searchsorted(changes[:, 0], np.arange(k + 1))
    out = []
    for i in range(k):
        starts = np.concatenate([[0], changes[bounds[i]: bounds[i + 1], 1] + 1, [h * w]])
        counts = np.diff(starts).tolist()
        out.append({"size": [h, w], "counts": ([0] if first[i] else []) + counts})
    return out


def rle_to_mask(rle: dict) -> np.ndarray:
    """An uncompressed RLE -> (H,W) bool."""
    h, w = rle["size"]
    counts = np.asarray(rle["counts"], dtype=np.int64)
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(w, h).T


def rle_area(rle: dict) -> int:
    return int(sum(rle["counts"][1::2]))


def coco_rle(rle: dict) -> dict:
    """An uncompressed RLE -> COCO's compressed RLE {"size": [H, W], "counts": str} (pycocotools)."""
    from pycocotools import mask as mask_utils

    h, w = rle["size"]
    encoded = mask_utils.frPyObjects(rle, h, w)
    encoded["counts"] = encoded["counts"].decode("utf-8")
    return encoded


def remove_small_regions(mask: np.ndarray, area: int, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than ``area`` pixels, with
    8-connectivity; an island mask whose islands are all small keeps its largest. Returns (mask, changed).
    Upstream computes the same components with OpenCV; here scikit-image labels them."""
    from skimage.measure import label

    holes = mode == "holes"
    working = holes ^ mask
    regions, n = label(working, connectivity=2, return_num=True)
    sizes = np.bincount(regions.ravel(), minlength=n + 1)[1:]
    small = np.flatnonzero(sizes < area) + 1
    if len(small) == 0:
        return mask, False
    if holes:  # the mask (label 0 of the background's labelling) and its small holes
        return np.isin(regions, np.concatenate([[0], small])), True
    big = np.setdiff1d(np.arange(1, n + 1), small)
    if len(big) == 0:
        big = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(regions, big), True
