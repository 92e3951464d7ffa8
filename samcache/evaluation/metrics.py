"""IoU bookkeeping shared by Phase 1 and Phase 2.

Two aggregations of per-class IoU:
- mean over images: IoU per (image, class) where the class is present, averaged per class
  (the seed project's number);
- dataset-level: intersections and unions summed over images, then divided (cityscapesScripts).
Void pixels (labels that map to IGNORE) are excluded from both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from samcache.data.labels import IGNORE, ClassSet


@dataclass
class IoUAccumulator:
    """Collects (image, class) intersections and unions; classes absent from an image are not added."""

    per_image: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    inter: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    union: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, class_name: str, inter: int, union: int) -> float:
        iou = inter / union if union else float("nan")
        self.per_image[class_name].append(iou)
        self.inter[class_name] += inter
        self.union[class_name] += union
        return iou

    def summary(self, class_names: list[str]) -> list[dict]:
        """Rows of class, iou_mean_over_images, iou_dataset; plus a final ``mean`` row."""
        rows = []
        for name in class_names:
            if not self.per_image.get(name):
                rows.append({"class": name, "iou_mean_over_images": float("nan"), "iou_dataset": float("nan")})
                continue
            rows.append({"class": name,
                         "iou_mean_over_images": float(np.nanmean(self.per_image[name])),
                         "iou_dataset": self.inter[name] / self.union[name] if self.union[name] else float("nan")})
        rows.append({"class": "mean",
                     "iou_mean_over_images": _nanmean([r["iou_mean_over_images"] for r in rows]),
                     "iou_dataset": _nanmean([r["iou_dataset"] for r in rows])})
        return rows


def _nanmean(values: list[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(arr)) if np.isfinite(arr).any() else float("nan")


def confusion_matrix_torch(pred: torch.Tensor, gt: torch.Tensor, num_classes: int,
                           num_predicted: int | None = None) -> torch.Tensor:
    """(num_classes, num_predicted) counts, rows = ground truth, gt == IGNORE skipped; on the tensors' device
    (torch.bincount): no per-image host copy.

    ``num_predicted`` > num_classes adds prediction columns, e.g. one for "no class predicted".
    """
    cols = num_predicted or num_classes
    keep = gt != IGNORE
    idx = gt[keep].long() * cols + pred.to(gt.device)[keep].long()
    return torch.bincount(idx, minlength=num_classes * cols).reshape(num_classes, cols)


def iou_from_confusion(conf: np.ndarray) -> np.ndarray:
    """Per-class TP / (TP + FP + FN), as cityscapesScripts' getIouScoreForLabel computes it.

    Rows are ground truth; extra prediction columns (e.g. "unlabeled") count as misses only.
    """
    n = conf.shape[0]
    tp = np.diag(conf[:, :n]).astype(np.float64)
    denom = conf.sum(1) + conf[:, :n].sum(0) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def masked_counts(masks: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, target_index=None,
                  valid_index=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersections and unions (N,) int64 of boolean masks (N,H,W) with targets, void excluded.

    ``targets`` and ``valid`` are (N,H,W) or (H,W), or (M,H,W) picked per mask by ``target_index`` /
    ``valid_index`` (N,) (no stacked copies). On the CPU the counting runs in numpy, one mask at a time
    (torch.count_nonzero over dims costs ~60x more there); elsewhere on the device, results stay there.
    """
    if masks.device.type == "cpu":
        inter, union = _counts_numpy(masks.numpy(), _rows(targets, target_index, len(masks)),
                                     _rows(valid, valid_index, len(masks)))
        return torch.from_numpy(inter), torch.from_numpy(union)
    if target_index is not None:
        targets = targets[torch.as_tensor(target_index, device=targets.device)]
    if valid_index is not None:
        valid = valid[torch.as_tensor(valid_index, device=valid.device)]
    masks, targets = masks & valid, targets & valid
    dims = (-2, -1)  # count_nonzero: no int64 copy of every pixel, as sum() on bool would make
    return torch.count_nonzero(masks & targets, dim=dims), torch.count_nonzero(masks | targets, dim=dims)


def _rows(stack: torch.Tensor, index, n: int) -> list:
    """The (H,W) numpy views each mask is counted against."""
    array = stack.numpy() if isinstance(stack, torch.Tensor) else stack
    if array.ndim == 2:
        return [array] * n
    picks = range(n) if index is None else (int(i) for i in index)
    return [array[i] for i in picks]


def _counts_numpy(masks, targets: list, valid: list) -> tuple[np.ndarray, np.ndarray]:
    inter, union = np.zeros(len(masks), np.int64), np.zeros(len(masks), np.int64)
    for i, (mask, target, keep) in enumerate(zip(masks, targets, valid)):
        mask, target = mask & keep, target & keep
        inter[i] = np.count_nonzero(mask & target)
        union[i] = np.count_nonzero(mask | target)
    return inter, union


def paint_order(scores: torch.Tensor) -> torch.Tensor:
    """(P,) scores -> indices from the lowest score to the highest; equal scores higher index first, so that
    painting in this order leaves each pixel with an argmax's choice (the first of equal maxima)."""
    return len(scores) - 1 - torch.argsort(scores.float().flip(0), stable=True)


def compose_by_score(masks: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, none: int) -> torch.Tensor:
    """One label map from overlapping masks: each pixel takes the class of the highest-scoring mask that
    covers it (the first such mask on equal scores, as an argmax would); pixels no mask covers get ``none``.
    masks (P,H,W) bool, scores (P,), classes (P,) -> (H,W) long.

    The masks are painted from the lowest score to the highest (stable order, ties painted later-index
    first), so the last paint at a pixel is its argmax: no (P,H,W) float copy.
    """
    label = torch.full(masks.shape[1:], none, dtype=torch.long, device=masks.device)
    if len(masks) == 0:
        return label
    order = paint_order(scores)
    values = classes.to(masks.device)
    for p in range(len(order)):  # index_select: no host sync on a GPU
        pick = order[p: p + 1]
        label.masked_fill_(masks.index_select(0, pick)[0], values.index_select(0, pick)[0])
    return label


IMAGE_COLUMNS = ["image_id", "class", "iou", "intersection", "union"]  # per-image IoU rows (per_image.csv)


def image_rows(image_id: str, confusion: np.ndarray, class_set: ClassSet) -> list[dict]:
    """One image's confusion matrix (n, n or n+1: an extra "unlabeled" column counts as misses) -> a row per
    evaluated class in its ground truth or its label map: that image's IoU of the class, void excluded. The
    report ranks images by these rows without running anything again."""
    n = class_set.num_classes
    counts = np.asarray(confusion, np.int64)
    inter = np.diagonal(counts[:, :n])
    union = counts.sum(axis=1) + counts[:, :n].sum(axis=0) - inter  # gt + predicted - both
    return [{"image_id": image_id, "class": class_set.class_names[c], "iou": float(inter[c] / union[c]),
             "intersection": int(inter[c]), "union": int(union[c])} for c in class_set.eval_indices if union[c]]


def class_ious(conf: np.ndarray, class_set: ClassSet) -> tuple[dict[str, float], float]:
    """Per evaluated class IoU and their mean (seed5's 'other' is trained but not averaged)."""
    iou = iou_from_confusion(conf)
    per_class = {class_set.class_names[c]: float(iou[c]) for c in class_set.eval_indices}
    values = [v for v in per_class.values() if np.isfinite(v)]
    return per_class, float(np.mean(values)) if values else float("nan")
