"""Ground-truth side of the interactive click protocol (RITM / SimpleClick NoC; SAM paper).

Per object mask: click 1 at the point farthest from the object's boundary (or a uniform
pixel); every next click follows one of two rules (``NEXT_CLICK_RULES``):
- ``ritm`` (default), the rule of RITM's evaluation code (``isegm/inference/clicker.py``,
  ``Clicker._get_next_click``), which published NoC tables use: false negatives
  FN = gt & ~pred & valid and false positives FP = ~gt & pred & valid, each padded by one pixel
  (the image border counts as boundary) and given an exact Euclidean distance transform;
  pixels already clicked get distance 0; the click goes to the largest distance over both
  maps, positive if the FN maximum is strictly larger, else negative, at the first such pixel
  in row-major order. One deviation: when no unclicked error pixel is left (both maxima 0)
  RITM would click (0, 0); here the object is done instead;
- ``largest-region``: the largest 4-connected error region (ties: the region whose first
  pixel comes first in row-major order), at its point farthest from its boundary.
Everything here is numpy at original resolution; ``evaluation.placement`` does the same on a
device for a batch of objects; the SAM decoder loop that calls it lives in the pipeline.

Conventions shared by every function:
- coordinates are ``(x, y)`` integer pixels of the original image;
- "farthest from the boundary" is the Euclidean distance to the nearest pixel outside the
  region, the outside of the image counting as outside (``prompts.center_point``); ties go to
  the first pixel in row-major order;
- void pixels (labelIds the class set maps to ``IGNORE``) belong to no object, never count as
  an error and are left out of IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.ndimage import distance_transform_edt, find_objects
from skimage.measure import label as connected_components

from samcache.choices import FIRST_CLICK_MODES, NEXT_CLICK_RULES, STUFF_MODES
from samcache.data.labels import IGNORE, ClassSet
from samcache.evaluation.prompts import center_point

POSITIVE, NEGATIVE = 1, 0  # click labels, as SAM's point_labels
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


@dataclass
class ClickObject:
    """One object to segment interactively; ``mask`` is (H, W) bool at original resolution."""

    object_id: int  # the instance id for an instance, else the component number (1, 2, ...)
    class_index: int  # index into class_set.class_names
    mask: np.ndarray
    area: int


def is_thing(class_set: ClassSet, index: int) -> bool:
    """Thing classes carry instance ids in the dataset's instance files (Cityscapes: ``hasInstances``)."""
    return class_set.is_thing(index)


def _first_pixel(labels: np.ndarray, value: int, box: tuple[slice, slice]) -> tuple[int, int]:
    """(row, col) of the row-major-first pixel of ``labels == value``, whose bounding box is ``box``."""
    row = int(box[0].start)
    return row, int(box[1].start) + int(np.argmax(labels[row, box[1]] == value))


def _full_mask(shape: tuple[int, ...], box: tuple[slice, slice], part: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[box] = part
    return mask


def _instance_objects(keys: np.ndarray, class_set: ClassSet, things: set[int],
                      min_area: int) -> list[ClickObject]:
    """One object per instance key (all its pieces, however occlusion split them), ascending id."""
    objects = []
    for iid, box in enumerate(find_objects(keys), start=1):
        if box is None:
            continue
        cls = int(class_set.instance_class(np.array(iid)))
        if cls not in things:
            continue
        part = keys[box] == iid
        area = int(np.count_nonzero(part))
        if area >= min_area:
            objects.append(ClickObject(iid, cls, _full_mask(keys.shape, box, part), area))
    return objects


def _region_objects(region_map: np.ndarray, stuff: str, min_area: int) -> list[ClickObject]:
    """Objects from a class-index map (IGNORE = no region): components, or one per class.

    Components are numbered 1, 2, ... per class in row-major order of their first pixel,
    before ``min_area`` filtering, so ids do not depend on ``min_area``.
    """
    objects = []
    if stuff == "class":
        for c in np.unique(region_map[region_map != IGNORE]):
            mask = region_map == c
            area = int(np.count_nonzero(mask))
            if area >= min_area:
                objects.append(ClickObject(1, int(c), mask, area))
        return objects
    comps = connected_components(region_map, background=IGNORE, connectivity=1)
    found = []  # (class, first pixel, component label, bounding box)
    for lab, box in enumerate(find_objects(comps), start=1):
        row, col = _first_pixel(comps, lab, box)
        found.append((int(region_map[row, col]), (row, col), lab, box))
    numbers: dict[int, int] = {}
    for c, _, lab, box in sorted(found, key=lambda f: f[:2]):
        numbers[c] = numbers.get(c, 0) + 1
        part = comps[box] == lab
        area = int(np.count_nonzero(part))
        if area >= min_area:
            objects.append(ClickObject(numbers[c], c, _full_mask(comps.shape, box, part), area))
    return objects


def objects_for_image(label_ids: np.ndarray, instance_ids: np.ndarray, class_set: ClassSet,
                      stuff: str = "components", min_area: int = 1) -> list[ClickObject]:
    """Every object of one image for the evaluated classes of ``class_set``.

    ``label_ids`` (H, W) uint8 the dataset's label ids, ``instance_ids`` (H, W) int its instance ids (Cityscapes:
    gtFine instanceIds). Thing classes: one object per instance (``ClassSet.instance_keys``), even when
    occlusion split it, ``object_id`` = its instance id. Group regions (thing pixels without an
    instance id, e.g. "cargroup"), stuff classes and every class of a dataset without instances: one object per
    4-connected component
    (``stuff="components"``, ids 1, 2, ... in row-major order of the component's first pixel)
    or one object for the whole region of the class in the image (``stuff="class"``, id 1).
    Objects with fewer than ``min_area`` pixels are dropped. Order: by class (``eval_indices``
    order), then instances by ascending id, then components by id. Objects are disjoint and
    contain no void pixel.
    """
    if stuff not in STUFF_MODES:
        raise ValueError(f"unknown stuff mode {stuff!r}; choose one of {', '.join(STUFF_MODES)}")
    if label_ids.shape != instance_ids.shape:
        raise ValueError(f"labelIds {label_ids.shape} and instanceIds {instance_ids.shape} differ in shape")
    evaluated = set(class_set.eval_indices)
    things = {c for c in evaluated if is_thing(class_set, c)}
    region_map = class_set.to_index(label_ids).copy()
    region_map[~np.isin(region_map, list(evaluated))] = IGNORE
    keys = class_set.instance_keys(instance_ids)
    region_map[np.isin(region_map, list(things)) & (keys > 0)] = IGNORE
    rank = {c: i for i, c in enumerate(class_set.eval_indices)}
    instances = _instance_objects(keys, class_set, things, min_area)
    regions = _region_objects(region_map, stuff, min_area)
    keyed = [((rank[o.class_index], 0, o.object_id), o) for o in instances]
    keyed += [((rank[o.class_index], 1, o.object_id), o) for o in regions]
    return [o for _, o in sorted(keyed, key=lambda k: k[0])]


def _bbox(mask: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def _center_in_box(region: np.ndarray, box: tuple[slice, slice]) -> tuple[int, int]:
    """center_point of a region given as its bounding-box crop; exact, since center_point pads
    the crop with outside pixels and nothing beyond the box is closer than that ring."""
    x, y = center_point(region)
    return int(x) + int(box[1].start), int(y) + int(box[0].start)


def first_click(mask: np.ndarray, mode: str = "center", rng: np.random.Generator | None = None) -> tuple[int, int]:
    """(x, y) of click 1: the point farthest from the mask boundary, or a uniform mask pixel."""
    if not mask.any():
        raise ValueError("first_click needs a non-empty mask")
    if mode == "center":
        box = _bbox(mask)
        return _center_in_box(mask[box], box)
    if mode == "random":
        if rng is None:
            raise ValueError("first_click(mode='random') needs an rng")
        ys, xs = np.nonzero(mask)
        i = int(rng.integers(len(ys)))
        return int(xs[i]), int(ys[i])
    raise ValueError(f"unknown first-click mode {mode!r}; choose one of {', '.join(FIRST_CLICK_MODES)}")


def next_click(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, clicked=(), rule: str = "ritm"
               ) -> tuple[int, int, int] | None:
    """(x, y, label) of the next click, or None when no error is left to click (see the module doc).

    ``pred``, ``gt``, ``valid``: (H, W) bool; ``clicked``: the clicks so far as (x, y, ...) (only
    the ``ritm`` rule looks at them); label is 1 (positive) in a false negative, 0 otherwise.
    """
    if rule == "ritm":
        return _ritm_click(pred, gt, valid, clicked)
    if rule == "largest-region":
        return _largest_region_click(pred, gt, valid)
    raise ValueError(f"unknown next-click rule {rule!r}; choose one of {', '.join(NEXT_CLICK_RULES)}")


def padded_edt(mask: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance to the nearest pixel outside ``mask``, the ring outside the array counting
    as outside (RITM pads by one pixel before its transform). (h, w) bool -> (h, w) float64."""
    return distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def _deepest(mask: np.ndarray, clicked) -> tuple[float, tuple[int, int]]:
    """(distance, (x, y)) of the mask's first pixel farthest from its boundary, clicked pixels at distance 0.

    Computed on the mask's bounding box padded by one pixel: outside the box the distance is 0, and the
    padding ring is at least as close as any outside pixel (clamping onto the box shortens both
    coordinate differences), so this is exact."""
    if not mask.any():
        return 0.0, (0, 0)
    box = _bbox(mask)
    dist = padded_edt(mask[box])
    (r0, r1), (c0, c1) = (box[0].start, box[0].stop), (box[1].start, box[1].stop)
    for x, y, *_ in clicked:
        if r0 <= y < r1 and c0 <= x < c1:
            dist[y - r0, x - c0] = 0.0
    y, x = np.unravel_index(np.argmax(dist), dist.shape)  # the first maximum in row-major order
    return float(dist[y, x]), (int(x) + c0, int(y) + r0)


def _ritm_click(pred, gt, valid, clicked) -> tuple[int, int, int] | None:
    fn_max, fn_at = _deepest(gt & ~pred & valid, clicked)
    fp_max, fp_at = _deepest(pred & ~gt & valid, clicked)
    if max(fn_max, fp_max) == 0:  # no error, or every error pixel clicked already (RITM would click (0, 0))
        return None
    return (*fn_at, POSITIVE) if fn_max > fp_max else (*fp_at, NEGATIVE)


def _largest_region_click(pred, gt, valid) -> tuple[int, int, int] | None:
    """Error regions are the 4-connected components of false negatives (gt & ~pred & valid) and,
    separately, of false positives (pred & ~gt & valid). The largest by pixel count wins; on
    equal areas, the region whose first pixel comes first in row-major order (FN and FP regions
    are disjoint, so this is never a tie)."""
    fn = gt & ~pred & valid
    fp = pred & ~gt & valid
    if not (fn.any() or fp.any()):
        return None
    box = _bbox(fn | fp)  # label only the part of the image that has errors
    fn_labels, n_fn = ndimage.label(fn[box], structure=FOUR_CONNECTED)
    fp_labels, _ = ndimage.label(fp[box], structure=FOUR_CONNECTED)
    comps = np.where(fp_labels > 0, fp_labels + n_fn, fn_labels)  # FN regions 1..n_fn, then FP regions
    areas = np.bincount(comps.ravel())
    areas[0] = 0
    tied = np.flatnonzero(areas == areas.max())
    flat = comps.ravel()
    best = min(tied, key=lambda lab: int(np.argmax(flat == lab))) if len(tied) > 1 else int(tied[0])
    region = comps == best
    sub = _bbox(region)
    x, y = _center_in_box(region[sub], sub)
    x, y = x + box[1].start, y + box[0].start
    return x, y, POSITIVE if fn[y, x] else NEGATIVE


def iou(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    """IoU over valid pixels; 1.0 when both are empty there (nothing to get wrong)."""
    pred, gt = pred & valid, gt & valid
    union = int(np.count_nonzero(pred | gt))
    return 1.0 if union == 0 else int(np.count_nonzero(pred & gt)) / union
