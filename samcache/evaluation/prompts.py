"""Prompt strategies, sampled from ground-truth masks (original-image pixel coordinates).

- random:       one uniform point inside the class mask (the seed project's behaviour): with one
                uniform draw u per evaluated class and image, the floor(u * n)-th of the class's n
                pixels in row-major order (``device_prompts`` draws the same points on a device)
- center:       the point farthest from the mask boundary (distance transform; the image
                border counts as boundary, as in interactive-segmentation evaluation)
- per-instance: one center point per instance (the dataset's instances for thing classes,
                connected components for stuff, and for every class of a dataset without
                instances); the class prediction is the union
- multi:        K positive points plus K negatives from other valid classes
- box:          the mask's bounding box
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt
from skimage.measure import label as connected_components

from samcache.data.labels import IGNORE, ClassSet
from samcache.evaluation.strategies import get_strategy, sampler_of

MIN_INSTANCE_PIXELS = 50  # smaller fragments get no prompt of their own (unless nothing is larger)


@dataclass
class Prompt:
    points: np.ndarray  # (N, 2) float [x, y]; N may be 0 for a box
    point_labels: np.ndarray  # (N,) int, 1 positive / 0 negative
    box: np.ndarray | None = None  # (4,) [x0, y0, x1, y1]

    def key(self) -> tuple:
        """Prompts with equal keys can share one decoder call (same token count)."""
        return (len(self.points), self.box is not None)


def center_point(mask: np.ndarray) -> np.ndarray:
    """[x, y] of the distance-transform maximum (first in row-major order on ties); (H, W) bool -> (2,).

    Computed on the mask's bounding box padded by one outside pixel: exact, since any pixel outside
    the box is at least as far as its clamp onto the padding ring, and row-major order within the box
    is row-major order in the image.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros(2, dtype=np.float64)  # an empty mask has no inside: (0, 0), as the full transform gives
    r0, c0 = int(rows[0]), int(cols[0])
    crop = mask[r0: int(rows[-1]) + 1, c0: int(cols[-1]) + 1]
    dist = distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dist), dist.shape)
    return np.array([x + c0, y + r0], dtype=np.float64)


def uniform_point(mask: np.ndarray, u: float) -> np.ndarray:
    """(1, 2) [x, y]: the floor(u * n)-th of the mask's n pixels in row-major order, u in [0, 1)."""
    ys, xs = np.nonzero(mask)
    i = min(int(np.floor(u * len(ys))), len(ys) - 1)
    return np.array([[xs[i], ys[i]]], dtype=np.float64)


def _uniform_points(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    idx = rng.choice(len(ys), size=min(k, len(ys)), replace=False)
    return np.stack([xs[idx], ys[idx]], axis=1).astype(np.float64)


def instance_masks(class_mask: np.ndarray, instances: np.ndarray, is_thing: bool) -> list[np.ndarray]:
    """One mask per instance: ``instances`` (instance keys, 0 outside any instance: ``ClassSet.instance_keys``)
    for things, connected components otherwise."""
    parts = []
    if is_thing:
        ids = np.unique(instances[class_mask & (instances > 0)])
        parts = [class_mask & (instances == i) for i in ids]
        rest = class_mask & (instances == 0)  # "group" regions that carry no instance id
    else:
        rest = class_mask
    if rest.any():
        comps = connected_components(rest, connectivity=1)
        parts += [comps == c for c in range(1, comps.max() + 1)]
    big = [p for p in parts if p.sum() >= MIN_INSTANCE_PIXELS]
    return big or [max(parts, key=lambda p: p.sum())]


@dataclass
class ClassRegion:
    """One class's ground truth in one image: what a strategy's sampler sees (original-image pixels)."""

    mask: np.ndarray  # (H, W) bool, non-empty: the class's pixels
    valid: np.ndarray  # (H, W) bool: pixels of any evaluated class (not IGNORE); negatives come from here
    instances: np.ndarray  # (H, W) instance keys: 0 outside any instance (``ClassSet.instance_keys``)
    is_thing: bool  # the dataset tells the class's instances apart (``ClassSet.is_thing``)
    rng: np.random.Generator
    points: int = 3  # multi: positives
    negatives: int = 3  # multi: negatives from other classes
    draw: float | None = None  # random: the class's uniform number (drawn from rng when not given)


def _positive(points: np.ndarray) -> Prompt:
    return Prompt(points, np.ones(len(points), np.int64))


def random_point(region: ClassRegion) -> list[Prompt]:
    u = region.rng.random() if region.draw is None else region.draw
    return [_positive(uniform_point(region.mask, u))]


def center(region: ClassRegion) -> list[Prompt]:
    return [_positive(center_point(region.mask)[None])]


def per_instance(region: ClassRegion) -> list[Prompt]:
    return [_positive(center_point(m)[None]) for m in instance_masks(region.mask, region.instances, region.is_thing)]


def multi(region: ClassRegion) -> list[Prompt]:
    pos = _uniform_points(region.mask, region.points, region.rng)
    others = region.valid & ~region.mask
    neg = (_uniform_points(others, region.negatives, region.rng) if region.negatives and others.any()
           else np.zeros((0, 2)))
    labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    return [Prompt(np.concatenate([pos, neg]), labels)]


def box(region: ClassRegion) -> list[Prompt]:
    ys, xs = np.nonzero(region.mask)
    corners = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
    return [Prompt(np.zeros((0, 2)), np.zeros(0, np.int64), corners)]


def sample_prompts(strategy: str, region: ClassRegion) -> list[Prompt]:
    """Prompts for one class in one image, by the registered strategy's sampler (``evaluation/strategies.py``)."""
    return sampler_of(strategy)(region)


def image_prompts(strategy: str, class_set: ClassSet, class_map: np.ndarray, instances: np.ndarray,
                  rng: np.random.Generator, points: int = 3, negatives: int = 3) -> list[tuple[int, Prompt]]:
    """(class index, prompt) for every evaluated class present in the image (absent classes get none);
    ``instances``: the dataset's instance ids as the cache holds them.

    The random strategy draws one uniform number per evaluated class first (present or not), so a
    device can draw the same ones without knowing which classes are present."""
    valid = class_map != IGNORE
    n = len(class_set.eval_indices)
    draws = rng.random(n) if get_strategy(strategy).per_class_draw else [None] * n
    out = []
    keys = None
    for c, draw in zip(class_set.eval_indices, draws):
        mask = class_map == c
        if mask.any():
            keys = class_set.instance_keys(instances) if keys is None else keys
            region = ClassRegion(mask, valid, keys, class_set.is_thing(c), rng, points, negatives, draw)
            out += [(c, p) for p in sample_prompts(strategy, region)]
    return out
