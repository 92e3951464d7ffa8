"""Zero-shot prompts sampled on the labels' device (GPU; runs on CPU tensors too), equal to ``prompts``.

``random`` and ``center`` for every evaluated class of one image at once: no loop over classes on
the host, only the points come back. ``random`` takes the same uniform draws as
``prompts.image_prompts`` (one per evaluated class, from the same seeded generator) and picks the
floor(u * n)-th pixel of the class in row-major order through one stable sort of the label map;
``center`` runs the exact integer distance transform of ``placement`` on every class's bounding
box at once. The other strategies stay on the host (DataLoader workers).
"""

from __future__ import annotations

import numpy as np
import torch

from samcache.data.labels import ClassSet
from samcache.evaluation.placement import CANVAS_PIXELS, chunk_by_size, crop_canvas, edt_squared, first_max, mask_boxes
from samcache.evaluation.prompts import Prompt

DEVICE_STRATEGIES = ("random", "center")


def _random_points(class_map: torch.Tensor, classes: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """(E, 3) long: x, y, present for each class; the floor(u * n)-th pixel in row-major order."""
    flat = class_map.flatten().long()
    counts = torch.bincount(flat, minlength=256)
    starts = torch.cumsum(counts, 0) - counts
    order = torch.argsort(flat, stable=True)  # pixels grouped by class, row-major within a class
    n = counts[classes]
    k = torch.minimum(torch.floor(draws * n.double()).long(), (n - 1).clamp(min=0))
    at = order[(starts[classes] + k).clamp(max=flat.numel() - 1)]
    w = class_map.shape[1]
    return torch.stack([at % w, at // w, (n > 0).long()], 1)


def _center_points(class_map: torch.Tensor, classes: torch.Tensor) -> list:
    """Per class (x, y) of its distance-transform maximum (first in row-major order), None when absent."""
    masks = class_map[None] == classes.view(-1, 1, 1).to(class_map.dtype)
    boxes = mask_boxes(masks)
    out: list = [None] * len(classes)
    for members in chunk_by_size(boxes, CANVAS_PIXELS):
        (crops,), origin = crop_canvas([masks], boxes, members)
        _, at = first_max(edt_squared(crops))
        w = crops.shape[2]
        found = torch.stack([at % w - 1 + origin[:, 1], at // w - 1 + origin[:, 0]], 1)
        for i, (x, y) in zip(members, found.tolist()):
            out[i] = (x, y)
    return out


def device_image_prompts(strategy: str, class_set: ClassSet, class_map: torch.Tensor, rng: np.random.Generator
                         ) -> list[tuple[int, Prompt]]:
    """``prompts.image_prompts`` for ``DEVICE_STRATEGIES`` with the label map (H, W) uint8 on its device."""
    classes = torch.tensor(class_set.eval_indices, device=class_map.device)
    if strategy == "random":
        draws = torch.from_numpy(rng.random(len(classes))).to(class_map.device)
        found = [(x, y) if present else None for x, y, present in _random_points(class_map, classes, draws).tolist()]
    elif strategy == "center":
        found = _center_points(class_map, classes)
    else:
        raise ValueError(f"strategy {strategy!r} is sampled on the host; on the device: {', '.join(DEVICE_STRATEGIES)}")
    return [(c, Prompt(np.array([point], dtype=np.float64), np.ones(1, np.int64)))
            for c, point in zip(class_set.eval_indices, found) if point is not None]
