"""Next clicks and NoC against RITM's rule, re-implemented here from its description
(isegm/inference/clicker.py Clicker._get_next_click; isegm/inference/utils.py compute_noc_metric),
and the device placement (run on CPU tensors) against the scipy one, bit for bit."""

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


def ritm_click(pred, gt, valid, clicked):
    """RITM's rule on the whole image: FN / FP maps (not-ignored only), padded by one pixel, exact EDT,
    clicked pixels zeroed, maximum over both maps (positive only if the FN maximum is strictly larger),
    first pixel in row-major order (np.where's order). None where RITM would click a zero distance."""
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    fn_dt = distance_transform_edt(np.pad(fn, ((1, 1), (1, 1)), "constant"))[1:-1, 1:-1]
    fp_dt = distance_transform_edt(np.pad(fp, ((1, 1), (1, 1)), "constant"))[1:-1, 1:-1]
    not_clicked = np.ones(gt.shape, bool)
    for x, y, *_ in clicked:
        not_clicked[y, x] = False
    fn_dt, fp_dt = fn_dt * not_clicked, fp_dt * not_clicked
    fn_max, fp_max = np.max(fn_dt), np.max(fp_dt)
    if fn_max == 0 and fp_max == 0:
        return None
    is_positive = fn_max > fp_max
    ys, xs = np.where(fn_dt == fn_max) if is_positive else np.where(fp_dt == fp_max)
    return int(xs[0]), int(ys[0]), int(is_positive)


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


def test_next_click_equals_ritm_on_random_masks():
    negative_on_equal = clicked_mattered = 0
    for seed in range(300):
        pred, gt, valid, clicked = random_case(seed)
        expected = ritm_click(pred, gt, valid, clicked)
        assert next_click(pred, gt, valid, clicked, rule="ritm") == expected, f"seed {seed}"
        assert next_click(pred, gt, valid, clicked) == expected  # ritm is the default
        fn_dt = distance_transform_edt(np.pad(gt & ~pred & valid, 1))
        fp_dt = distance_transform_edt(np.pad(pred & ~gt & valid, 1))
        negative_on_equal += expected is not None and fn_dt.max() == fp_dt.max() > 0
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
