"""Next-click placement for a batch of objects on the predictions' device (GPU; runs on CPU tensors too).

The same rules as ``evaluation.clicks.next_click`` (``ritm`` and ``largest-region``), with the same
clicks bit for bit, but batched: every object's error crop (its bounding box) goes into one canvas
(chunks of crops padded to a common size) with a 1-pixel zero border, so the distance transform
of each crop is exact for the whole image; the transform, the 4-connected labelling and the
per-object argmax (first maximum in row-major order) run on the device. What crosses to the host:
each object's bounding box (4 integers, to size the canvas) and its click.

The distance transform works in integer squared distances, so maxima and ties are exact:
pass 1 finds, per column, the distance to the nearest background pixel above or below
(cumulative maxima of indices); pass 2 takes, per row, min_k g(k)^2 + (j - k)^2 over offsets
|j - k| = 0, 1, ... until the offset alone exceeds the largest distance found (exact stop).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from samcache.choices import NEXT_CLICK_RULES
from samcache.evaluation.clicks import NEGATIVE, POSITIVE

CANVAS_PIXELS = 1 << 25  # pixels per canvas chunk (int32 maps: ~128 MiB each), bounding device memory


def edt_squared(inside: torch.Tensor) -> torch.Tensor:
    """Exact squared Euclidean distance to the nearest False pixel: (N, h, w) bool -> (N, h, w) int32.

    Every row and column must hold a False pixel (a canvas with a zero border does). int32 holds any
    squared distance of an image up to 32,000 pixels a side.
    """
    n, h, w = inside.shape
    rows = torch.arange(h, dtype=torch.int32, device=inside.device).view(1, h, 1).expand(n, h, w)
    never = torch.full_like(rows, -(h + w))
    above = rows - torch.where(inside, never, rows).cummax(dim=1).values  # to the last background at or above
    flipped = inside.flip(1)
    below = (rows - torch.where(flipped, never, rows).cummax(dim=1).values).flip(1)
    column = torch.minimum(above, below)
    squared = column * column
    best = squared.clone()
    largest = int(best.max()) if best.numel() else 0
    offset = 1
    while offset * offset < largest and offset < w:
        cost = offset * offset
        left = squared[:, :, :-offset] + cost  # candidate k = j - offset for pixels j >= offset
        best[:, :, offset:] = torch.minimum(best[:, :, offset:], left)
        best[:, :, :-offset] = torch.minimum(best[:, :, :-offset], squared[:, :, offset:] + cost)
        largest = int(best.max())
        offset += 1
    return best


@dataclass
class Crops:
    """Objects' error crops on one canvas: ``fn``/``fp`` (N, h, w) bool with a zero border; ``origin``
    (N, 2) long on the device and ``origin_host``: image (row, col) of canvas pixel (1, 1) of each;
    ``members``: their positions in the batch."""

    fn: torch.Tensor
    fp: torch.Tensor
    origin: torch.Tensor
    origin_host: list[tuple[int, int]]
    members: list[int]


def mask_boxes(errors: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """(A, H, W) bool -> per object (row0, row1, col0, col1) of its errors, None without one (one host copy)."""
    rows, cols = errors.any(dim=2), errors.any(dim=1)
    h, w = rows.shape[1], cols.shape[1]
    r_idx, c_idx = torch.arange(h, device=errors.device), torch.arange(w, device=errors.device)
    first_r = torch.where(rows, r_idx, h).amin(1)
    last_r = torch.where(rows, r_idx, -1).amax(1)
    first_c = torch.where(cols, c_idx, w).amin(1)
    last_c = torch.where(cols, c_idx, -1).amax(1)
    out = []
    for r0, r1, c0, c1 in torch.stack([first_r, last_r, first_c, last_c], 1).tolist():
        out.append(None if r1 < 0 else (r0, r1 + 1, c0, c1 + 1))
    return out


def chunk_by_size(boxes: list, budget: int) -> list[list[int]]:
    """Group objects (largest crops first) so that count * padded size stays within ``budget`` pixels."""
    order = sorted((i for i, b in enumerate(boxes) if b is not None),
                   key=lambda i: -(boxes[i][1] - boxes[i][0]) * (boxes[i][3] - boxes[i][2]))
    chunks, current, hmax, wmax = [], [], 0, 0
    for i in order:
        h, w = boxes[i][1] - boxes[i][0] + 2, boxes[i][3] - boxes[i][2] + 2
        nh, nw = max(hmax, h), max(wmax, w)
        if current and (len(current) + 1) * nh * nw > budget:
            chunks.append(current)
            current, nh, nw = [], h, w
        current.append(i)
        hmax, wmax = nh, nw
    return chunks + ([current] if current else [])


def crop_canvas(maps: list[torch.Tensor], boxes: list, members: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gather each member's box of each (A, H, W) map into (N, h+2, w+2) with zeros around and beyond it."""
    device = maps[0].device
    h = max(boxes[i][1] - boxes[i][0] for i in members) + 2
    w = max(boxes[i][3] - boxes[i][2] for i in members) + 2
    box = torch.tensor([boxes[i] for i in members], device=device)  # (N, 4)
    rows = box[:, :1] - 1 + torch.arange(h, device=device)  # (N, h) image rows
    cols = box[:, 2:3] - 1 + torch.arange(w, device=device)
    inside_r = (rows >= box[:, :1]) & (rows < box[:, 1:2])
    inside_c = (cols >= box[:, 2:3]) & (cols < box[:, 3:4])
    keep = inside_r[:, :, None] & inside_c[:, None, :]
    obj = torch.tensor(members, device=device).view(-1, 1, 1)
    r = rows.clamp(0, maps[0].shape[1] - 1)[:, :, None]
    c = cols.clamp(0, maps[0].shape[2] - 1)[:, None, :]
    return [m[obj, r, c] & keep for m in maps], box[:, [0, 2]]


def first_max(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of (N, h, w): (max value, flat index of its first occurrence in row-major order)."""
    flat = values.flatten(1)
    top = flat.amax(dim=1)
    index = torch.where(flat == top[:, None], torch.arange(flat.shape[1], device=flat.device), flat.shape[1])
    return top, index.amin(dim=1)  # explicit first occurrence: argmax's tie order is not promised on every device


def _label_components(fn: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """4-connected components of FN and, separately, FP pixels: (N, h, w) long, 0 outside, else 1 + the flat
    index of the component's first pixel in row-major order (min-label propagation with pointer jumping)."""
    n, h, w = fn.shape
    kind = fn.long() + 2 * fp.long()  # 0 none, 1 FN, 2 FP
    size = h * w
    index = torch.arange(1, size + 1, device=fn.device).view(1, h, w).expand(n, h, w)
    none = size + 1
    labels = torch.where(kind > 0, index, torch.full_like(index, none))
    base = (torch.arange(n, device=fn.device) * size).view(n, 1, 1)
    while True:
        prev = labels
        for dim, step in ((1, 1), (1, -1), (2, 1), (2, -1)):
            neighbour = torch.roll(labels, step, dims=dim)
            same = torch.roll(kind, step, dims=dim) == kind  # the zero border stops wrap-around
            labels = torch.where((kind > 0) & same, torch.minimum(labels, neighbour), labels)
        jumped = labels.flatten().clone()
        inner = kind.flatten() > 0
        jumped[inner] = labels.flatten()[(base + labels - 1).flatten()[inner]]  # a label is a pixel of its component
        labels = jumped.view(n, h, w)
        if torch.equal(labels, prev):
            return torch.where(kind > 0, labels, torch.zeros_like(labels))


def _ritm(crops: Crops, clicked: list) -> torch.Tensor:
    """(N, 3) long: canvas (row, col) of each object's click and its label; row -1 when no error is left."""
    dist = edt_squared(torch.cat([crops.fn, crops.fp]))
    n = len(crops.members)
    rows, cols, objs = [], [], []
    for k, (i, (r0, c0)) in enumerate(zip(crops.members, crops.origin_host)):  # clicked pixels get distance 0
        for x, y, *_ in clicked[i]:
            rows.append(y - r0 + 1), cols.append(x - c0 + 1), objs.append(k)
    if objs:
        h, w = dist.shape[1:]
        r, c, o = (torch.tensor(v, device=dist.device) for v in (rows, cols, objs))
        inside = (r >= 1) & (r < h - 1) & (c >= 1) & (c < w - 1)
        r, c, o = r[inside], c[inside], o[inside]
        dist[o, r, c] = 0
        dist[o + n, r, c] = 0
    fn_max, fn_at = first_max(dist[:n])
    fp_max, fp_at = first_max(dist[n:])
    positive = fn_max > fp_max
    at = torch.where(positive, fn_at, fp_at)
    w = dist.shape[2]
    row = torch.where(torch.maximum(fn_max, fp_max) > 0, at // w, -1)
    return torch.stack([row, at % w, torch.where(positive, POSITIVE, NEGATIVE)], 1)


def _largest_region(crops: Crops) -> torch.Tensor:
    """(N, 3) long as ``_ritm``: the largest error region (ties: first pixel first), at its farthest point."""
    labels = _label_components(crops.fn, crops.fp)
    n, h, w = labels.shape
    size = h * w
    key = (torch.arange(n, device=labels.device).view(n, 1, 1) * (size + 1) + labels).flatten()
    areas = torch.bincount(key, minlength=n * (size + 1)).view(n, size + 1)
    areas[:, 0] = 0
    top = areas.amax(dim=1, keepdim=True)
    first = torch.where(areas == top, torch.arange(size + 1, device=labels.device), size + 1).amin(dim=1)
    region = labels == first.view(n, 1, 1)
    _, at = first_max(edt_squared(region))
    row, col = at // w, at % w
    objs = torch.arange(n, device=labels.device)
    return torch.stack([row, col, torch.where(crops.fn[objs, row, col], POSITIVE, NEGATIVE)], 1)


def place_clicks(preds: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, clicked: list,
                 rule: str = "ritm", budget: int = CANVAS_PIXELS) -> list[tuple[int, int, int] | None]:
    """The next click of every object, as ``clicks.next_click`` would place it, computed on the device.

    preds, targets, valid: (A, H, W) bool on one device; clicked: per object its clicks so far
    [(x, y, label), ...]. Returns per object (x, y, label) or None when no error is left.
    """
    if rule not in NEXT_CLICK_RULES:
        raise ValueError(f"unknown next-click rule {rule!r}; choose one of {', '.join(NEXT_CLICK_RULES)}")
    fn = targets & ~preds & valid
    fp = preds & ~targets & valid
    boxes = mask_boxes(fn | fp)
    out: list[tuple[int, int, int] | None] = [None] * len(boxes)
    for members in chunk_by_size(boxes, budget):
        (fn_c, fp_c), origin = crop_canvas([fn, fp], boxes, members)
        crops = Crops(fn_c, fp_c, origin, [(boxes[i][0], boxes[i][2]) for i in members], members)
        found = _ritm(crops, clicked) if rule == "ritm" else _largest_region(crops)
        found[:, 0] += torch.where(found[:, 0] >= 0, origin[:, 0] - 1, 0)
        found[:, 1] += origin[:, 1] - 1
        for i, (y, x, label) in zip(members, found.tolist()):  # the only copy back: three numbers per object
            out[i] = None if y < 0 else (x, y, label)
    return out
