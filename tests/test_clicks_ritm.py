"""Next clicks and NoC against RITM's published rule (isegm/inference/clicker.py Clicker._get_next_click;
isegm/inference/utils.py compute_noc_metric), and the device placement (run on CPU tensors) against the scipy one,
bit for bit.

The reference shares no algorithm with ``evaluation.clicks``: no distance transform. Each pixel's distance to
the outside of its error region is found by enumeration over the outside pixels (every pair on small maps; on
the large maps of test_clicks_run, exactly, column by column), in integer squared pixels, so ties are exact.
RITM's rule on top of it: pad the false-negative and false-positive maps by one pixel (the image border is
outside), zero the clicked pixels, click the larger maximum (positive only if the false negatives' is strictly
larger), at the first pixel of that maximum in row-major order (``np.where``'s order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation, distance_transform_edt, gaussian_filter

from samcache.data.labels import IGNORE, get_class_set
from samcache.evaluation.click_metrics import noc, summarize
from samcache.evaluation.clicks import first_click, next_click
from samcache.evaluation.placement import edt_squared, place_clicks
from test_clicks import official_labels  # noqa: F401,F811  (the fixture: cityscapesscripts-drawn labels)

PAIRS_LIMIT = 4_000_000  # inside x outside pixel pairs enumerated at once; larger maps go column by column


def squared_distance_pairs(region: np.ndarray) -> np.ndarray:
    """(h, w) bool -> int64 squared distance of each region pixel to the nearest pixel outside it, the one-pixel
    ring around the map counting as outside (RITM's padding); 0 outside the region. Every pair enumerated."""
    padded = np.pad(region, 1)
    inside, outside = np.argwhere(padded), np.argwhere(~padded)  # the ring alone makes ``outside`` non-empty
    out = np.zeros(padded.shape, np.int64)
    if len(inside):
        diff = inside[:, None, :] - outside[None, :, :]
        out[tuple(inside.T)] = (diff ** 2).sum(-1).min(1)
    return out[1:-1, 1:-1]


def squared_distance_columns(region: np.ndarray) -> np.ndarray:
    """The same numbers for large maps: min over outside (r, c) of (y - r)^2 + (x - c)^2 is min over columns c
    of (x - c)^2 + v(y, c)^2, v the distance from row y to the nearest outside row of column c (counted by a
    walk down and a walk up each column); every column c is then enumerated for every region pixel."""
    padded = np.pad(region, 1)
    down, up = np.zeros(padded.shape, np.int64), np.zeros(padded.shape, np.int64)
    for y in range(1, padded.shape[0]):  # row 0 and the last row are the ring: outside, distance 0
        down[y] = np.where(padded[y], down[y - 1] + 1, 0)
        up[-1 - y] = np.where(padded[-1 - y], up[-y] + 1, 0)
    vertical = np.minimum(down, up) ** 2
    cols = np.arange(padded.shape[1])
    out = np.zeros(padded.shape, np.int64)
    for y in range(1, padded.shape[0] - 1):
        xs = np.nonzero(padded[y])[0]
        if len(xs):
            out[y, xs] = (vertical[y][None, :] + (xs[:, None] - cols[None, :]) ** 2).min(1)
    return out[1:-1, 1:-1]


def squared_distance(region: np.ndarray) -> np.ndarray:
    """``squared_distance_pairs`` (small regions) or ``_columns``, on the region's bounding box: an outside pixel
    beyond the box's one-pixel ring is never nearer than the ring pixel it clamps to (which is outside too)."""
    out = np.zeros(region.shape, np.int64)
    if not region.any():
        return out
    ys, xs = np.nonzero(region)
    box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    crop = region[box]
    inside, size = int(crop.sum()), (crop.shape[0] + 2) * (crop.shape[1] + 2)
    enumerate_ = squared_distance_pairs if inside * (size - inside) <= PAIRS_LIMIT else squared_distance_columns
    out[box] = enumerate_(crop)
    return out


def ritm_click(pred, gt, valid, clicked):
    """RITM's next click (x, y, 1 positive / 0 negative) from the squared distances; None where RITM would click
    a zero distance (no unclicked error pixel left: samcache's documented deviation)."""
    fn = squared_distance(gt & ~pred & valid)
    fp = squared_distance(~gt & pred & valid)
    for x, y, *_ in clicked:
        fn[y, x] = fp[y, x] = 0
    if fn.max() == 0 and fp.max() == 0:
        return None
    positive = fn.max() > fp.max()  # equal maxima: negative, as RITM's strict comparison gives
    chosen = fn if positive else fp
    ys, xs = np.nonzero(chosen == chosen.max())  # row-major order
    return int(xs[0]), int(ys[0]), int(positive)


def ritm_noc(ious, threshold, max_clicks):
    """compute_noc_metric's per-object count: first click reaching the threshold, else max_clicks."""
    reached = np.asarray(ious[:max_clicks]) >= threshold
    return int(np.argmax(reached)) + 1 if reached.any() else max_clicks


def random_mask(rng, shape=(14, 17)):
    if rng.random() < 0.5:
        return gaussian_filter(rng.random(shape), sigma=rng.uniform(0.8, 2.5)) > rng.uniform(0.4, 0.6)
    return rng.random(shape) < rng.uniform(0.1, 0.9)


def random_case(seed):
    rng = np.random.default_rng(seed)
    gt = random_mask(rng)
    pred = gt ^ random_mask(rng) if rng.random() < 0.7 else random_mask(rng)
    valid = rng.random(gt.shape) > (0.15 if seed % 3 == 0 else 0.0)
    errors = np.argwhere((gt ^ pred) & valid)
    picks = errors[rng.choice(len(errors), size=min(len(errors), int(rng.integers(0, 4))), replace=False)] \
        if len(errors) else np.zeros((0, 2), int)
    clicked = [(int(c), int(r), 1) for r, c in picks] + [(int(rng.integers(17)), int(rng.integers(14)), 0)]
    deepest = ritm_click(pred, gt, valid, [])
    if deepest is not None and rng.random() < 0.5:  # the click already made there: the next one must move
        clicked.append(deepest)
    return pred, gt, valid, clicked


def test_the_two_enumerations_agree_and_are_distances_to_the_outside():
    """Columns = pairs on random maps; and by hand: a 3x5 block's centre row is 2 from the ring (squared 4)."""
    for seed in range(60):
        rng = np.random.default_rng(900 + seed)
        region = random_mask(rng, (int(rng.integers(1, 16)), int(rng.integers(1, 16))))
        assert np.array_equal(squared_distance_columns(region), squared_distance_pairs(region)), f"seed {seed}"
    block = np.zeros((7, 9), bool)
    block[2:5, 2:7] = True
    assert squared_distance(block)[3].tolist() == [0, 0, 1, 4, 4, 4, 1, 0, 0]
    assert squared_distance(np.ones((1, 1), bool)).tolist() == [[1]]  # the image border is outside


def test_next_click_equals_ritm_on_random_masks():
    negative_on_equal = clicked_mattered = 0
    for seed in range(300):
        pred, gt, valid, clicked = random_case(seed)
        expected = ritm_click(pred, gt, valid, clicked)
        assert next_click(pred, gt, valid, clicked, rule="ritm") == expected, f"seed {seed}"
        assert next_click(pred, gt, valid, clicked) == expected  # ritm is the default
        fn_max, fp_max = squared_distance(gt & ~pred & valid).max(), squared_distance(pred & ~gt & valid).max()
        negative_on_equal += expected is not None and fn_max == fp_max > 0
        clicked_mattered += ritm_click(pred, gt, valid, []) != expected
    assert negative_on_equal > 10 and clicked_mattered > 10  # the tie and clicked-pixel rules were exercised


def test_next_click_equals_ritm_on_official_format_objects(official_labels):  # noqa: F811
    label_ids, instance_ids = official_labels
    cs = get_class_set("cityscapes19")
    valid = cs.to_index(label_ids) != IGNORE
    index = cs.to_index(label_ids)
    # the objects, built here from the label images: instances by id, stuff / groups as whole class regions
    objects = [instance_ids == i for i in np.unique(instance_ids[instance_ids >= 1000])]
    objects += [(index == c) & (instance_ids < 1000) for c in cs.eval_indices]
    objects = [o for o in objects if o.any()]
    rng = np.random.default_rng(0)
    checked = 0
    for gt in objects:
        assert first_click(gt, "center") == ritm_click(np.zeros_like(gt), gt, valid, [])[:2]
        clicks = [(*first_click(gt, "center"), 1)]
        for _ in range(5):  # a protocol with made-up predictions: grown, shifted, partly another object
            pred = binary_dilation(gt, iterations=int(rng.integers(0, 3))) if rng.random() < 0.5 else np.roll(
                gt, int(rng.integers(-4, 5)), axis=int(rng.integers(2)))
            pred = pred ^ (rng.random(gt.shape) < 0.02)
            expected = ritm_click(pred, gt, valid, clicks)
            assert next_click(pred, gt, valid, clicks) == expected
            if expected is None:
                break
            clicks.append(expected)
            checked += 1
    assert checked > 30


def test_first_center_click_is_ritms_rule_on_an_empty_prediction():
    for seed in range(150):
        rng = np.random.default_rng(500 + seed)
        gt = random_mask(rng)
        if gt.any():
            empty = np.zeros_like(gt)
            assert first_click(gt, "center") == ritm_click(empty, gt, np.ones_like(gt), [])[:2], f"seed {seed}"
            assert next_click(empty, gt, np.ones_like(gt)) == (*first_click(gt, "center"), 1)


def test_noc_equals_ritms_convention():
    rng = np.random.default_rng(1)
    curves = [np.sort(rng.random(int(rng.integers(1, 9)))).tolist() for _ in range(60)]
    max_clicks = 6
    for curve in curves:
        for t in (0.8, 0.85, 0.9):
            assert noc(curve, t, max_clicks) == ritm_noc(curve, t, max_clicks)
    objects = [{"class": "car", "ious": c} for c in curves]
    row = summarize(objects, ["car"], max_clicks)[0]
    padded = [c + [c[-1]] * (max_clicks - len(c)) for c in curves]  # a curve that stopped keeps its last IoU
    for t in (0.80, 0.85, 0.90):
        assert row[f"noc@{round(t * 100)}"] == pytest.approx(np.mean([ritm_noc(c, t, max_clicks) for c in padded]))
    for t in (0.85, 0.90):
        assert row[f"nof@{round(t * 100)}"] == sum(not (np.asarray(c[:max_clicks]) >= t).any() for c in padded)


# --------------------------------------------------------------------------- device placement (CPU fallback)
def test_edt_squared_equals_scipy():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        mask = np.pad(random_mask(rng, (int(rng.integers(1, 20)), int(rng.integers(1, 20)))), 1)
        want = np.rint(distance_transform_edt(mask) ** 2).astype(np.int64)
        assert np.array_equal(edt_squared(torch.from_numpy(mask)[None])[0].numpy(), want), f"seed {seed}"


@pytest.mark.parametrize("rule", ["ritm", "largest-region"])
def test_device_placement_equals_scipy(rule):
    """Batches of objects, in one canvas and in chunks (a small budget), give the scipy clicks bit for bit."""
    for seed in range(40):
        cases = [random_case(100 * seed + k) for k in range(6)]
        cases.append((cases[0][1].copy(), cases[0][1], cases[0][2], []))  # no error left: None
        preds, gts, valids = (torch.from_numpy(np.stack([c[i] for c in cases])) for i in range(3))
        clicked = [c[3] for c in cases]
        want = [next_click(p, g, v, c, rule) for p, g, v, c in cases]
        for budget in (1 << 20, 400):
            assert place_clicks(preds, gts, valids, clicked, rule, budget) == want, (seed, budget)
