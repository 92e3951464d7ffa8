"""Overlays for runs: image, ground truth, prediction, prompts (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from samcache import fileio  # noqa: E402
from samcache.data.cityscapes import read_image, record_for  # noqa: E402
from samcache.data.labels import IGNORE, ClassSet  # noqa: E402


def source_image(data_root: str | None, split: str, image_id: str) -> np.ndarray | None:
    """The original RGB image if the data is still where extraction found it (display only)."""
    if not data_root:
        return None
    try:
        return read_image(record_for(data_root, split, image_id).image_path)
    except Exception:
        return None


def colorize(index_map: np.ndarray, class_set: ClassSet) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    for i in range(class_set.num_classes):
        lut[i] = class_set.color(i)
    return lut[index_map]


def blend(image: np.ndarray | None, index_map: np.ndarray, class_set: ClassSet, alpha: float = 0.55) -> np.ndarray:
    base = image if image is not None else np.full((*index_map.shape, 3), 96, np.uint8)
    color = colorize(index_map, class_set).astype(np.float32)
    out = base.astype(np.float32)
    painted = index_map != IGNORE
    out[painted] = (1 - alpha) * out[painted] + alpha * color[painted]
    return out.astype(np.uint8)


def save_overlay(path: Path, image: np.ndarray | None, gt: np.ndarray, pred: np.ndarray, class_set: ClassSet,
                 title: str, points: list[tuple[np.ndarray, np.ndarray]] = (), boxes: list[np.ndarray] = ()) -> None:
    """Three panels: image, ground truth, prediction (+ positive/negative points and boxes)."""
    panels = [("image", image if image is not None else blend(None, gt, class_set, 0.0)),
              ("ground truth", blend(image, gt, class_set)), ("prediction", blend(image, pred, class_set))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5 * gt.shape[0] / gt.shape[1] + 0.7))
    for ax, (name, panel) in zip(axes, panels):
        ax.imshow(panel)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    for coords, labels in points:
        for ax in axes[1:]:
            pos, neg = coords[labels == 1], coords[labels == 0]
            ax.scatter(pos[:, 0], pos[:, 1], c="lime", marker="*", s=70, edgecolors="black", linewidths=0.5)
            ax.scatter(neg[:, 0], neg[:, 1], c="red", marker="x", s=40)
    for box in boxes:
        for ax in axes[1:]:
            ax.add_patch(plt.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False,
                                       edgecolor="yellow", linewidth=1.2))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
