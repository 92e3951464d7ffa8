"""Overlays for runs: image, ground truth, prediction, prompts (matplotlib, headless).

Pictures are a side product: one that cannot be drawn (the image changed since extraction, a full
disk, a plotting error) is skipped with one warning, and never costs the run its results.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from samcache import fileio  # noqa: E402
from samcache.data.files import read_image  # noqa: E402
from samcache.data.labels import IGNORE, ClassSet  # noqa: E402
from samcache.errors import SamcacheWarning  # noqa: E402


def picture(draw):
    """Run a drawing function; if it fails, warn (naming the file and why) and return False."""

    @functools.wraps(draw)
    def guarded(path, *args, **kwargs) -> bool:
        try:
            draw(path, *args, **kwargs)
            return True
        except Exception as exc:  # never KeyboardInterrupt: an interrupt still stops the command
            plt.close("all")
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"picture {path} skipped: {reason}", SamcacheWarning)
            return False

    return guarded


def series_colors(n: int) -> list:
    """``n`` distinct colours: tab10, tab20 up to 20 series, then evenly spaced hues (never a repeat)."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("hsv")(i / n) for i in range(n)]


def wrap_title(title: str, width_inches: float, chars_per_inch: float = 11.0) -> str:
    """A title broken into lines that fit the figure's width (matplotlib clips a long one)."""
    import textwrap

    return "\n".join(textwrap.wrap(title, max(20, int(width_inches * chars_per_inch))))


def _same_size(image: np.ndarray | None, labels: np.ndarray) -> None:
    if image is not None and image.shape[:2] != labels.shape[:2]:
        raise ValueError(f"the image in the data folder is {image.shape[1]}x{image.shape[0]} but the cache's labels "
                         f"are {labels.shape[1]}x{labels.shape[0]} (the data changed since extraction)")


def source_image(split, image_id: str) -> np.ndarray | None:
    """The original RGB image of a cache split's row if the data is still where extraction found it (display
    only). ``split``: a ``CacheSplit`` (its dataset knows where its images are)."""
    data_root = split.attrs.get("data_root")
    if not data_root:
        return None
    try:
        return read_image(split.dataset.record_for(data_root, split.name, image_id).image_path)
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


@picture
def save_overlay(path: Path, image: np.ndarray | None, gt: np.ndarray, pred: np.ndarray, class_set: ClassSet,
                 title: str, points: list[tuple[np.ndarray, np.ndarray]] = (), boxes: list[np.ndarray] = ()) -> None:
    """Three panels: image, ground truth, prediction (+ positive/negative points and boxes)."""
    _same_size(image, gt)
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
    fig.suptitle(wrap_title(title, 15), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)


@picture
def save_curve(path: Path, curves: dict[str, list[float]], title: str) -> None:
    """mIoU against the number of clicks, one line per class plus all (thicker)."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if not curves:
        curves = {"all": []}
    for name, values in curves.items():
        ks = range(1, len(values) + 1)
        ax.plot(ks, values, marker="o", markersize=3, label=name, linewidth=2.5 if name == "all" else 1.2,
                color="black" if name == "all" else None)
    ax.set_xlabel("clicks")
    ax.set_xticks(range(1, max(len(v) for v in curves.values()) + 1))
    ax.set_ylabel("mIoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # never over a curve
    ax.set_title(wrap_title(title, 7), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight"))
    plt.close(fig)


@picture
def save_click_overlay(path: Path, image: np.ndarray | None, mask: np.ndarray, pred: np.ndarray, clicks: list,
                       ious: list[float], title: str, margin: int = 48) -> None:
    """The object (green), the last prediction (magenta; overlap white) and every click (lime star:
    positive, red cross: negative), cropped around them, beside the IoU curve."""
    _same_size(image, mask)
    base = image if image is not None else np.full((*mask.shape, 3), 96, np.uint8)
    shown = base.astype(np.float32)
    for region, color in ((mask & ~pred, (0, 200, 0)), (pred & ~mask, (230, 0, 230)), (mask & pred, (255, 255, 255))):
        shown[region] = 0.45 * shown[region] + 0.55 * np.array(color)
    ys, xs = np.nonzero(mask | pred)
    ys = np.concatenate([ys, [c[1] for c in clicks]])
    xs = np.concatenate([xs, [c[0] for c in clicks]])
    y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, mask.shape[0])
    x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, mask.shape[1])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    left.imshow(shown[y0:y1, x0:x1].astype(np.uint8), extent=(x0 - 0.5, x1 - 0.5, y1 - 0.5, y0 - 0.5))
    for k, (x, y, label) in enumerate(clicks, start=1):
        if label:
            left.scatter([x], [y], c="lime", marker="*", s=90, edgecolors="black", linewidths=0.5)
        else:
            left.scatter([x], [y], c="red", marker="x", s=60)
        left.annotate(str(k), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8, color="yellow")
    left.axis("off")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    left.legend(handles=[Patch(color=(0, 200 / 255, 0), label="object (missed)"),
                         Patch(color=(230 / 255, 0, 230 / 255), label="prediction (false positive)"),
                         Patch(color="white", ec="gray", label="object and prediction"),
                         Line2D([], [], color="lime", marker="*", ls="", mec="black", ms=10, label="positive click"),
                         Line2D([], [], color="red", marker="x", ls="", ms=8, label="negative click")],
                fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), borderaxespad=0.2)
    right.plot(range(1, len(ious) + 1), ious, marker="o")
    right.set_ylim(0, 1)
    right.set_xticks(range(1, len(ious) + 1, max(1, len(ious) // 10)))
    right.set_xlabel("clicks")
    right.set_ylabel("IoU")
    fig.suptitle(wrap_title(title, 13), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    plt.close(fig)
