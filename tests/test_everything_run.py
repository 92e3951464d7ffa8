"""`samcache everything --refine-with`: the refined label maps are SSA's rule applied to the head's prediction,
and score as cityscapesScripts scores them; the report shows the row; bad values are one line each.

References: the head's prediction comes from `samcache evaluate --save-predictions` (another stage), the masks
from the run's masks/*.json decoded with pycocotools, SSA's rule re-implemented as a per-mask loop with numpy's
bincount, and the IoUs from cityscapesScripts' evaluateImgLists on the saved PNGs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error, invoke
from samcache.data.labels import get_class_set
from samcache.pipeline.runs import read_csv
from samcache.pipeline.train_head import train_head
from test_head import _official, cfg

GENERATOR = ("--points-per-side", "4", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
             "--box-nms-thresh", "1.0")  # random weights keep masks; every mask kept, overlapping ones too


def ssa_loop(head_index: np.ndarray, masks: list[np.ndarray], num_classes: int) -> np.ndarray:
    """SSA's loop: each mask in turn takes the most frequent class of the head's map inside it (lowest on ties)."""
    out = head_index.copy()
    for mask in masks:
        counts = np.bincount(head_index[mask], minlength=num_classes)
        out[mask] = int(np.argmax(counts))
    return out


def to_index(label_ids: np.ndarray, class_set) -> np.ndarray:
    lut = np.full(256, 255, np.int64)
    for index, label_id in enumerate(class_set.pred_label_ids):
        lut[label_id] = index
    return lut[label_ids]


@pytest.fixture(scope="module")
def head_checkpoint(cache32, tmp_path_factory):
    out = tmp_path_factory.mktemp("head") / "run"
    train_head(cfg(cache32, out, epochs=1), progress=False)
    return out / "head_epoch_1.pt"


def test_refined_maps_follow_ssa_and_score_as_cityscapesscripts(cache32, synth_root, head_checkpoint, tmp_path):
    from pycocotools import mask as mask_utils

    run = tmp_path / "everything"
    proc = invoke("everything", "--cache", cache32, "--refine-with", head_checkpoint, "--device", "cpu",
                  "--num-workers", "0", "--visualize", "1", "--out", run, "-q", *GENERATOR, check=True)
    assert "head + SAM masks" in proc.stdout and "RANDOM weights" in proc.stdout
    evaluated = tmp_path / "evaluate"
    invoke("evaluate", "--head", head_checkpoint, "--cache", cache32, "--device", "cpu", "--num-workers", "0",
           "--save-predictions", "--out", evaluated, check=True)
    class_set = get_class_set("seed5")
    refined_pngs = sorted((run / "predictions").glob("*/*_labelIds.png"))
    assert len(refined_pngs) == 3
    for png in refined_pngs:
        image_id = png.name.replace("_labelIds.png", "")
        records = json.loads((run / "masks" / f"{image_id}.json").read_text())
        assert records and set(records[0]) == {"segmentation", "area", "bbox", "predicted_iou", "point_coords",
                                               "stability_score", "crop_box"}
        masks = [mask_utils.decode({"size": r["segmentation"]["size"],
                                    "counts": r["segmentation"]["counts"].encode()}).astype(bool) for r in records]
        assert [int(m.sum()) for m in masks] == [r["area"] for r in records]
        head = to_index(np.asarray(Image.open(evaluated / "predictions" / png.parent.name / png.name)), class_set)
        want = ssa_loop(head, masks, class_set.num_classes)
        assert np.array_equal(to_index(np.asarray(Image.open(png)), class_set), want)
    ours = {r["class"]: r for r in read_csv(run / "summary.csv")}
    theirs = _official(refined_pngs, synth_root, "seed5")  # cityscapesScripts' evaluateImgLists
    head_alone = {r["class"]: r["iou"] for r in read_csv(evaluated / "summary.csv")}
    for name, value in theirs.items():
        if np.isnan(value):
            assert ours[name]["iou"] == ""
        else:
            assert float(ours[name]["iou"]) == pytest.approx(value, abs=1e-6), name
            assert float(ours[name]["iou_head"]) == pytest.approx(float(head_alone[name]), abs=1e-6), name
    assert (run / "visualizations").is_dir() and len(list((run / "visualizations").glob("*.png"))) == 2
    report = invoke("report", run, evaluated, "--out", tmp_path / "report", "--gallery", "0", check=True)
    assert "head + SAM masks" in report.stdout


def test_bad_values_are_one_line_and_leave_nothing(cache32, head_checkpoint, tmp_path):
    out = tmp_path / "never"
    cases = [(("--crop-n-layers", "1"), "crop"),
             (("--epoch", "last"), "--refine-with"),
             (("--refine-with", tmp_path), "not a head run"),
             (("--pred-iou-thresh", "1.5"), "pred-iou-thresh")]
    for extra, needle in cases:
        proc = invoke("everything", "--cache", cache32, "--device", "cpu", "--out", out, "-q", *extra)
        assert_one_line_error(proc, needle)
        assert not out.exists()


def test_the_documented_notebook_block_runs_as_written(cache32):
    from docs_text import code

    block = code("everything-api")
    for old, new in ((' "cache/cityscapes_vit_h.zarr"', f" {str(cache32)!r}"),
                     (' "checkpoints/sam_vit_h_4b8939.pth"', " None"),  # a random-weight cache has no checkpoint
                     ("points_per_side=32)", "points_per_side=2, pred_iou_thresh=0, stability_score_thresh=0)")):
        assert old in block, old
        block = block.replace(old, new)
    scope: dict = {}
    exec(compile(block, "docs/everything.md", "exec"), scope)  # noqa: S102 - the documented block itself
    assert scope["records"] and set(scope["per_image"]) == set(scope["val"].image_ids[:2])
    assert scope["per_image"][scope["val"].image_ids[0]] == scope["records"]


def test_random_weights_at_upstream_defaults_say_how_to_see_masks(cache32, tmp_path):
    """Random weights keep no mask at upstream's thresholds: the run says which settings show masks."""
    proc = invoke("everything", "--cache", cache32, "--device", "cpu", "--num-workers", "0", "--limit", "1",
                  "--points-per-side", "2", "--visualize", "1", "--out", tmp_path / "run", "-q", check=True)
    assert "0 masks on 1 image" in proc.stdout and "--pred-iou-thresh 0 --stability-score-thresh 0" in proc.stdout
    assert "picture" not in proc.stderr  # the picture of an image without masks is drawn
    assert list((tmp_path / "run" / "visualizations").glob("*_masks.png"))
    summary = read_csv(tmp_path / "run" / "summary.csv")
    assert "iou" not in summary[0] and float(summary[0]["masks_per_image"]) == 0.0  # no semantic column without a head
