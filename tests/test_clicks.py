"""Click protocol: placement against a brute-force reference, NoC/mIoU by hand, objects from
official-format annotations (drawn by cityscapesscripts' own json2labelImg / json2instanceImg)."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import name2label
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage.measure import label as connected_components

from samcache.data.labels import IGNORE, get_class_set
from samcache.evaluation.click_metrics import ObjectIoUs, noc, summarize
from samcache.evaluation.clicks import first_click, iou, next_click, objects_for_image


# --------------------------------------------------------------------------- brute force
def flood_fill_components(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """4-connected components as lists of (row, col), found in row-major order of their first pixel."""
    h, w = mask.shape
    seen = np.zeros_like(mask, bool)
    comps = []
    for r in range(h):
        for c in range(w):
            if not mask[r, c] or seen[r, c]:
                continue
            seen[r, c] = True
            stack, pixels = [(r, c)], []
            while stack:
                y, x = stack.pop()
                pixels.append((y, x))
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            comps.append(pixels)
    return comps


def farthest_pixel(pixels: list[tuple[int, int]], shape: tuple[int, int]) -> tuple[int, int]:
    """(x, y) maximising the squared distance to the nearest pixel outside ``pixels``, where the
    ring just outside the image is outside too; row-major first on ties (exact integer compare)."""
    h, w = shape
    inside = set(pixels)
    outside = np.array([(r, c) for r in range(-1, h + 1) for c in range(-1, w + 1) if (r, c) not in inside])
    best = None
    for r, c in sorted(pixels):
        d2 = int(((outside - (r, c)) ** 2).sum(axis=1).min())
        if best is None or d2 > best[0]:
            best = (d2, r, c)
    return best[2], best[1]


def reference_next_click(pred, gt, valid):
    regions = [(p, 1) for p in flood_fill_components(gt & ~pred & valid)]
    regions += [(p, 0) for p in flood_fill_components(pred & ~gt & valid)]
    if not regions:
        return None, 0
    areas = [len(p) for p, _ in regions]
    tied = [reg for reg in regions if len(reg[0]) == max(areas)]
    pixels, lab = min(tied, key=lambda reg: min(reg[0]))
    return (*farthest_pixel(pixels, gt.shape), lab), len(tied)


def random_mask(rng: np.random.Generator, shape=(12, 15)) -> np.ndarray:
    if rng.random() < 0.5:  # blobs
        return gaussian_filter(rng.random(shape), sigma=rng.uniform(0.8, 2.5)) > rng.uniform(0.4, 0.6)
    return rng.random(shape) < rng.uniform(0.1, 0.9)  # speckle


# --------------------------------------------------------------------------- click placement
def test_next_click_matches_brute_force():
    ties = errors_with_void = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        gt = random_mask(rng)
        pred = gt ^ random_mask(rng) if rng.random() < 0.7 else random_mask(rng)
        valid = rng.random(gt.shape) > (0.15 if seed % 3 == 0 else 0.0)
        expected, n_tied = reference_next_click(pred, gt, valid)
        click = next_click(pred, gt, valid, rule="largest-region")
        assert click == expected, f"seed {seed}"
        assert click is None or all(type(v) is int for v in click)  # plain ints, not numpy scalars
        ties += n_tied > 1
        errors_with_void += expected is not None and not valid.all()
    assert ties > 20 and errors_with_void > 50  # the tie rule and void handling were exercised


@pytest.mark.parametrize("rule", ["ritm", "largest-region"])
def test_next_click_none_and_void_only_errors(rule):
    gt = np.zeros((6, 7), bool)
    gt[1:4, 2:5] = True
    assert next_click(gt.copy(), gt, np.ones_like(gt), rule=rule) is None
    pred = gt.copy()
    pred[0, 0] = True  # a false positive, but on a void pixel
    valid = np.ones_like(gt)
    valid[0, 0] = False
    assert next_click(pred, gt, valid, rule=rule) is None
    valid[0, 0] = True
    assert next_click(pred, gt, valid, rule=rule) == (0, 0, 0)
    if rule == "ritm":  # the only error pixel is clicked already: nothing left to click
        assert next_click(pred, gt, valid, [(0, 0, 0)], rule=rule) is None
    with pytest.raises(ValueError):
        next_click(pred, gt, valid, rule="nearest")


def test_next_click_large_image_rectangles():
    """2048x1024: a 200x301 FN rectangle beats a smaller FP one touching the image border."""
    h, w = 1024, 2048
    gt = np.zeros((h, w), bool)
    pred = np.zeros((h, w), bool)
    gt[400:600, 1000:1301] = True  # FN, 200 rows x 301 cols
    pred[0:150, 1900:2048] = True  # FP at the top-right corner
    valid = np.ones((h, w), bool)
    # distance to outside for row i in [400, 600): min(i - 399, 600 - i) -> max 100 at rows 499, 500
    # -> row 499 first; columns give min(j - 999, 1301 - j) >= 100 for a wide range -> row distance rules,
    # and the first pixel of row 499 with distance 100 is at column j = 1099.
    assert next_click(pred, gt, valid, rule="largest-region") == (1099, 499, 1)
    assert next_click(pred, gt, valid, rule="ritm") == (1099, 499, 1)  # the deepest error pixel is there too
    gt[:] = False  # only the FP is left; the image border counts as its boundary
    # rows 0..149: min(i + 1, 150 - i) <= 75; cols 1900..2047: min(j + 1, 148 - j) <= 74 (j = 73, 74)
    # -> max 74, first reached at row i = 73 (min(74, 77)), column offset 73
    assert next_click(pred, gt, valid, rule="largest-region") == (1973, 73, 0)
    assert next_click(pred, gt, valid, rule="ritm") == (1973, 73, 0)


def test_first_click_center_matches_brute_force():
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        mask = random_mask(rng)
        if not mask.any():
            continue
        pixels = [tuple(p) for p in np.argwhere(mask)]
        click = first_click(mask, "center")
        assert click == farthest_pixel(pixels, mask.shape) and all(type(v) is int for v in click), f"seed {seed}"


def test_first_click_random_is_uniform_over_the_mask():
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True  # 6 pixels
    rng = np.random.default_rng(0)
    counts = Counter(first_click(mask, "random", rng) for _ in range(3000))
    assert set(counts) == {(x, y) for y in (1, 2) for x in (2, 3, 4)}
    assert min(counts.values()) > 400  # 500 expected each
    with pytest.raises(ValueError):
        first_click(np.zeros((3, 3), bool), "center")


def test_iou_ignores_void_and_defines_empty():
    gt = np.array([[1, 1, 0, 0]], bool)
    pred = np.array([[1, 0, 1, 1]], bool)
    valid = np.array([[1, 1, 1, 0]], bool)
    assert iou(pred, gt, valid) == pytest.approx(1 / 3)  # inter {0}, union {0, 1, 2}
    assert iou(pred, gt, np.ones_like(valid)) == pytest.approx(1 / 4)
    assert iou(np.zeros_like(gt), np.zeros_like(gt), valid) == 1.0
    assert iou(pred & ~valid, gt & ~valid, valid) == 1.0


# --------------------------------------------------------------------------- metrics
def test_noc_by_hand():
    assert noc([0.85], 0.85, 1) == 1  # reaching the threshold exactly counts
    assert noc([0.2, 0.3], 0.9, 2) == 2  # never: max_clicks, as RITM's compute_noc_metric counts it
    assert noc([0.1, 0.1, 0.95], 0.9, 2) == 2  # clicks past max_clicks do not count
    assert noc([0.5, 0.86, 0.91, 0.95], 0.90, 4) == 3


def test_summarize_by_hand():
    objects = [
        ObjectIoUs("car", [0.50, 0.86, 0.91, 0.95]),  # noc@80 2, @85 2, @90 3
        {"class": "car", "ious": [0.82, 0.84, 0.88, 0.89]},  # noc 1, 3, never (4, counted in NoF)
        {"class": "road", "ious": [0.95, 0.97]},  # stopped early -> padded with 0.97; noc 1, 1, 1
    ]
    rows = summarize(objects, ["road", "person", "car"], max_clicks=4, ks=(1, 2, 3, 5))
    assert [r["class"] for r in rows] == ["road", "person", "car", "all"]
    assert list(rows[0]) == ["class", "objects", "miou@1", "miou@2", "miou@3",
                             "noc@80", "noc@85", "noc@90", "nof@85", "nof@90"]
    road, person, car, everything = rows
    expected_car = {"objects": 2, "miou@1": 0.66, "miou@2": 0.85, "miou@3": 0.895,
                    "noc@80": 1.5, "noc@85": 2.5, "noc@90": 3.5, "nof@85": 0, "nof@90": 1}
    expected_road = {"objects": 1, "miou@1": 0.95, "miou@2": 0.97, "miou@3": 0.97,
                     "noc@80": 1.0, "noc@85": 1.0, "noc@90": 1.0, "nof@85": 0, "nof@90": 0}
    expected_all = {"objects": 3, "miou@1": (0.50 + 0.82 + 0.95) / 3, "miou@2": (0.86 + 0.84 + 0.97) / 3,
                    "miou@3": (0.91 + 0.88 + 0.97) / 3, "noc@80": 4 / 3, "noc@85": 2.0, "noc@90": 8 / 3,
                    "nof@85": 0, "nof@90": 1}
    for row, expected in ((car, expected_car), (road, expected_road), (everything, expected_all)):
        for key, value in expected.items():
            assert row[key] == pytest.approx(value), (row["class"], key)
    assert person["objects"] == 0 and math.isnan(person["miou@1"]) and person["nof@90"] == 0
    with pytest.raises(ValueError):
        summarize([{"class": "bus", "ious": [1.0]}], ["car"], max_clicks=1)


# --------------------------------------------------------------------------- objects from official-format labels
W, H = 80, 60
RECT = lambda x0, y0, x1, y1: [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]  # noqa: E731
ANNOTATION = [  # drawn in this order, later polygons on top (as in gtFine)
    ("building", RECT(0, 0, 79, 19)),
    ("static", RECT(30, 5, 40, 10)),  # void inside the building
    ("sidewalk", RECT(0, 20, 15, 29)),  # two separate sidewalk pieces; unlabeled in between
    ("sidewalk", RECT(64, 20, 79, 29)),
    ("terrain", RECT(20, 22, 23, 25)),  # two terrain squares touching only at a corner:
    ("terrain", RECT(24, 26, 27, 29)),  # two components under 4-connectivity
    ("road", RECT(0, 30, 79, 59)),
    ("cargroup", RECT(20, 35, 35, 45)),  # two separate group regions: no instance id
    ("cargroup", RECT(22, 50, 30, 56)),
    ("car", RECT(40, 32, 60, 50)),  # instance 26000 ...
    ("car", RECT(52, 40, 70, 55)),  # ... partly hidden by 26001
    ("person", RECT(5, 35, 15, 55)),  # 24000, split in two by the pole below
    ("pole", RECT(9, 30, 10, 58)),
    ("person", RECT(75, 56, 76, 57)),  # 24001: 4 pixels, for min_area
]


@pytest.fixture(scope="module")
def official_labels(tmp_path_factory):
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import createInstanceImage, json2instanceImg
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    root = tmp_path_factory.mktemp("gtFine")
    polygons = root / "x_gtFine_polygons.json"
    objects = [{"label": name, "polygon": poly} for name, poly in ANNOTATION]
    polygons.write_text(json.dumps({"imgHeight": H, "imgWidth": W, "objects": objects}))
    json2labelImg(str(polygons), str(root / "x_gtFine_labelIds.png"), "ids")
    try:
        json2instanceImg(str(polygons), str(root / "x_gtFine_instanceIds.png"), "ids")
    except OSError:  # Pillow >= 11 cannot write mode "I" PNGs; draw with the same function, save 16-bit
        annotation = Annotation()
        annotation.fromJsonFile(str(polygons))
        drawn = np.array(createInstanceImage(annotation, "ids"))
        Image.fromarray(drawn.astype(np.uint16)).save(root / "x_gtFine_instanceIds.png")
    label_ids = np.array(Image.open(root / "x_gtFine_labelIds.png")).astype(np.uint8)
    instance_ids = np.array(Image.open(root / "x_gtFine_instanceIds.png")).astype(np.int32)
    return label_ids, instance_ids


def ids_by_class(objects, class_set):
    out: dict[str, list[int]] = {}
    for o in objects:
        out.setdefault(class_set.class_names[o.class_index], []).append(o.object_id)
    return out


def test_objects_from_official_labels(official_labels):
    label_ids, instance_ids = official_labels
    cs = get_class_set("cityscapes19")
    assert sorted(np.unique(instance_ids[instance_ids >= 1000])) == [24000, 24001, 26000, 26001]
    objects = objects_for_image(label_ids, instance_ids, cs, stuff="components", min_area=1)
    assert ids_by_class(objects, cs) == {"road": [1], "sidewalk": [1, 2], "building": [1], "pole": [1],
                                         "terrain": [1, 2], "person": [24000, 24001],
                                         "car": [26000, 26001, 1, 2]}
    by_key = {(cs.class_names[o.class_index], o.object_id): o for o in objects}
    for o in objects:
        assert o.mask.shape == (H, W) and o.mask.dtype == bool and o.area == o.mask.sum()
        if o.object_id >= 1000:
            assert np.array_equal(o.mask, instance_ids == o.object_id)
    person = by_key["person", 24000]
    assert connected_components(person.mask, connectivity=1).max() == 2  # split by the pole, still one object
    assert by_key["car", 26000].area < 21 * 19 and (instance_ids[32:51, 40:61] == 26001).any()  # occluded
    group1, group2 = by_key["car", 1].mask, by_key["car", 2].mask
    assert group1[35:46, 20:36].all() and group1.sum() == 16 * 11  # first in row-major order
    assert group2[50:57, 22:31].all() and group2.sum() == 9 * 7
    left, right = by_key["sidewalk", 1].mask, by_key["sidewalk", 2].mask
    assert left[20, 0] and right[20, 79]
    for o in objects:  # group regions and stuff: the n-th flood-fill component of the class region
        if o.object_id < 1000:
            name = cs.class_names[o.class_index]
            region = (label_ids == name2label[name].id) & (instance_ids < 1000)
            expected = np.zeros((H, W), bool)
            expected[tuple(np.array(flood_fill_components(region)[o.object_id - 1]).T)] = True
            assert np.array_equal(o.mask, expected), (name, o.object_id)

    valid = cs.to_index(label_ids) != IGNORE
    assert not valid[7, 35] and not valid[25, 40]  # static; unlabeled between the sidewalks
    stacked = np.sum([o.mask for o in objects], axis=0)
    assert stacked.max() == 1 and np.array_equal(stacked == 1, valid)  # disjoint, cover every valid pixel

    big = objects_for_image(label_ids, instance_ids, cs, stuff="components", min_area=10)
    assert ids_by_class(big, cs)["person"] == [24000] and len(big) == len(objects) - 1


def test_stuff_class_vs_components(official_labels):
    label_ids, instance_ids = official_labels
    cs = get_class_set("cityscapes19")
    per_component = objects_for_image(label_ids, instance_ids, cs, stuff="components", min_area=1)
    per_class = objects_for_image(label_ids, instance_ids, cs, stuff="class", min_area=1)
    assert len(per_component) == 13 and len(per_class) == 10
    by_class = ids_by_class(per_class, cs)
    assert by_class["sidewalk"] == [1] and by_class["car"] == [26000, 26001, 1]
    car_group = next(o for o in per_class if o.object_id == 1 and cs.class_names[o.class_index] == "car")
    assert car_group.area == 16 * 11 + 9 * 7

    seed5 = get_class_set("seed5")  # pole is "other": valid, but not an object
    objects = objects_for_image(label_ids, instance_ids, seed5, stuff="components", min_area=1)
    assert ids_by_class(objects, seed5) == {"road": [1], "sidewalk": [1, 2], "building": [1],
                                            "person": [24000, 24001], "car": [26000, 26001, 1, 2]}
    assert seed5.to_index(label_ids)[40, 9] != IGNORE  # the pole pixel counts when scoring
    with pytest.raises(ValueError):
        objects_for_image(label_ids, instance_ids, cs, stuff="things")
