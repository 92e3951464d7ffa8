"""Pictures of an `everything` run: SAM's masks over the image, and a head's map beside its refinement."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samcache import fileio
from samcache.data.labels import ClassSet
from samcache.evaluation.visualize import blend, picture, plt, wrap_title

MASK_ALPHA = 0.35  # upstream's notebook (show_anns) draws each mask in a random colour at this opacity


def paint_masks(image: np.ndarray | None, masks: np.ndarray, seed: int = 0) -> np.ndarray:
    """(H,W,3) uint8: ``masks`` (K,H,W) in random colours over the image, largest first (smaller ones stay
    visible on top), as upstream's notebook shows a generator's output; the colours are seeded."""
    h, w = image.shape[:2] if image is not None else masks.shape[1:]
    out = (image if image is not None else np.full((h, w, 3), 96, np.uint8)).astype(np.float32)
    colours = np.random.default_rng(seed).random((len(masks), 3)) * 255
    for k in np.argsort(-masks.sum(axis=(1, 2)), kind="stable"):
        out[masks[k]] = (1 - MASK_ALPHA) * out[masks[k]] + MASK_ALPHA * colours[k]
    return out.astype(np.uint8)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


@picture
def save_masks_picture(path: Path, image: np.ndarray | None, masks: np.ndarray, title: str) -> None:
    """Two panels: the image, and the image under every mask."""
    painted = paint_masks(image, masks)
    h, w = painted.shape[:2]
    fig, axes = plt.subplots(1, 2, figsize=(12, 6 * h / w + 0.7))
    for ax, (name, panel) in zip(axes, [("image", image if image is not None else painted * 0 + 96),
                                        ("SAM masks (random colours)", painted)]):
        ax.imshow(panel)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(wrap_title(title, 12), fontsize=10)
    _save(fig, path)


@picture
def save_refined_picture(path: Path, image: np.ndarray | None, gt: np.ndarray, head: np.ndarray,
                         refined: np.ndarray, class_set: ClassSet, title: str) -> None:
    """Three panels: ground truth, the head's map, the map refined by SAM's masks."""
    panels = [("ground truth", blend(image, gt, class_set)), ("head", blend(image, head, class_set)),
              ("head + SAM masks", blend(image, refined, class_set))]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5 * gt.shape[0] / gt.shape[1] + 0.7))
    for ax, (name, panel) in zip(axes, panels):
        ax.imshow(panel)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(wrap_title(title, 15), fontsize=10)
    _save(fig, path)
