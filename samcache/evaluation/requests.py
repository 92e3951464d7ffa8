"""Prompts as a notebook user gives them (``Decoder.predict``/``predict_batch``), checked before any decoding.

Upstream's predictors check almost nothing: a short box fails in a numpy reshape, a wrong mask size in
torch, NaN coordinates decode to NaN scores. Every request here is checked first, so each such mistake
is one line (``SamcacheError``) naming the argument. What is accepted is what upstream's prompt encoders
take: point labels 1 (foreground), 0 (background) and -1 (padding: a "not a point" token that adds
nothing); coordinates in original-image pixels. Points and boxes outside the image are accepted, as
upstream accepts them (the positional encoding extrapolates), but they rarely mean anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from samcache.errors import SamcacheError

POINT_LABELS = (-1, 0, 1)  # padding, background, foreground: what segment_anything's PromptEncoder embeds


@dataclass
class PromptRequest:
    """One prompt for ``Decoder.predict_batch``, in original-image pixels (as upstream ``predict``)."""

    image_id: str | int
    points: np.ndarray | None = None  # (N, 2) [x, y]; may lie outside the image, as upstream allows
    labels: np.ndarray | None = None  # (N,) 1 foreground, 0 background, -1 padding
    box: np.ndarray | None = None  # (4,) x0, y0, x1, y1 with x0 <= x1, y0 <= y1
    mask_input: np.ndarray | None = None  # (1, low_res, low_res) logits of an earlier prediction
    multimask: bool = True


def _numbers(value, what: str) -> np.ndarray:
    """``value`` as a finite float64 array, or one line."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SamcacheError(f"{what} must be numbers, not {type(value).__name__}") from None
    if not np.isfinite(array).all():
        raise SamcacheError(f"{what} must be finite numbers (got NaN or infinity)")
    return array


def _points(points, labels) -> tuple[np.ndarray | None, np.ndarray | None]:
    if points is None:
        if labels is not None:
            raise SamcacheError("labels were given without points")
        return None, None
    coords = _numbers(points, "points")
    if coords.ndim != 2 or coords.shape[1] != 2:
        hint = " (one point is [[x, y]])" if coords.shape == (2,) else ""
        raise SamcacheError(f"points must be (N, 2) [x, y] pairs, got shape {coords.shape}{hint}")
    if labels is None:
        raise SamcacheError(f"points need labels, one per point (1 foreground, 0 background): got {len(coords)} "
                            f"point(s) and no labels")
    values = _numbers(labels, "labels")
    if values.shape != (len(coords),):
        raise SamcacheError(f"labels must be (N,), one per point: {len(coords)} points, labels of shape "
                            f"{values.shape}")
    bad = sorted(set(values[~np.isin(values, POINT_LABELS)].tolist()))
    if bad:
        raise SamcacheError(f"point labels must be 1 (foreground), 0 (background) or -1 (padding), got "
                            f"{', '.join(f'{v:g}' for v in bad)}")
    if len(coords) == 0:
        return None, None
    return coords, values.astype(np.int64)


def _box(box) -> np.ndarray | None:
    if box is None:
        return None
    values = _numbers(box, "box")
    if values.shape not in ((4,), (1, 4)):
        raise SamcacheError(f"box must be 4 numbers x0, y0, x1, y1, got shape {values.shape}")
    x0, y0, x1, y1 = values.reshape(4).tolist()
    if x0 > x1 or y0 > y1:
        raise SamcacheError(f"box must have x0 <= x1 and y0 <= y1, got [{x0:g}, {y0:g}, {x1:g}, {y1:g}]")
    return values.reshape(4)


def _mask(mask_input, low_res: int) -> np.ndarray | None:
    if mask_input is None:
        return None
    values = _numbers(mask_input, "mask_input")
    if values.shape != (1, low_res, low_res):
        raise SamcacheError(f"mask_input must be (1, {low_res}, {low_res}) low-res logits (an earlier prediction's "
                            f"low_res[k][None]), got shape {values.shape}")
    return values.astype(np.float32)


def check_request(request: PromptRequest, low_res: int) -> PromptRequest:
    """``request`` with arrays of the shapes and dtypes the decoder takes, or a one-line ``SamcacheError``.
    ``low_res``: the side of the family's low-res logits (256 for SAM 1 and 2.1, 288 for SAM 3)."""
    if not isinstance(request, PromptRequest):
        raise SamcacheError(f"predict_batch takes a list of PromptRequest, got a {type(request).__name__}")
    if not isinstance(request.multimask, (bool, np.bool_)):
        raise SamcacheError(f"multimask must be True or False, got {request.multimask!r}")
    points, labels = _points(request.points, request.labels)
    box = _box(request.box)
    if points is None and box is None:
        raise SamcacheError("a prompt needs points (with labels) or a box")
    return replace(request, points=points, labels=labels, box=box, mask_input=_mask(request.mask_input, low_res),
                   multimask=bool(request.multimask))


def check_requests(requests, low_res: int) -> list[PromptRequest]:
    """Every request checked; in a batch the error names the request (``prompt 3: ...``)."""
    requests = list(requests)
    checked = []
    for k, request in enumerate(requests):
        try:
            checked.append(check_request(request, low_res))
        except SamcacheError as exc:
            if len(requests) == 1:
                raise
            raise SamcacheError(f"prompt {k}: {exc}") from None
    return checked
