"""`samcache clicks`: every recorded IoU replays through upstream SamPredictor.predict; outputs are complete."""

import json

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from conftest import assert_one_line_error, invoke
from samcache.cache.reader import open_cache
from samcache.data.labels import get_class_set
from samcache.evaluation.click_metrics import noc, summarize
from samcache.evaluation.clicks import iou, objects_for_image, valid_mask
from samcache.features.models import build_random_sam
from samcache.pipeline.clicks import run_clicks
from samcache.pipeline.configs import ClicksConfig
from samcache.pipeline.runs import read_csv

MAX_CLICKS = 4


def clicks_cfg(cache, out, **kw):
    base = dict(cache=str(cache), out=str(out), max_clicks=MAX_CLICKS, device="cpu", visualize=1, num_workers=0,
                limit=1, min_area=100)
    return ClicksConfig(**{**base, **kw})


def replay(split, row, sam, obj_mask, valid, clicks, first_mask, mask_input=True):
    """The protocol through upstream's predictor: the same points, multimask and mask_input."""
    predictor = SamPredictor(sam)
    predictor.features = torch.from_numpy(split.embedding(row).astype(np.float32))[None]
    predictor.original_size = tuple(int(v) for v in split.original_sizes[row])
    predictor.input_size = tuple(int(v) for v in split.input_sizes[row])
    predictor.is_image_set = True
    ious, low_res = [], None
    for k in range(1, len(clicks) + 1):
        points = np.array([c[:2] for c in clicks[:k]], float)
        labels = np.array([c[2] for c in clicks[:k]])
        if k == 1:
            masks, scores, logits = predictor.predict(points, labels, multimask_output=True)
            if first_mask == "oracle":
                best = int(np.argmax([iou(m, obj_mask, valid) for m in masks]))
            else:
                best = int(np.argmax(scores))
        else:
            masks, scores, logits = predictor.predict(points, labels, mask_input=low_res if mask_input else None,
                                                      multimask_output=False)
            best = 0
        low_res = logits[best][None]
        ious.append(iou(masks[best], obj_mask, valid))
    return ious


@pytest.mark.parametrize("first_mask,mask_input", [("best-score", True), ("oracle", False)])
def test_every_recorded_iou_replays_through_upstream(cache32, tmp_path, first_mask, mask_input):
    record = run_clicks(clicks_cfg(cache32, tmp_path, first_mask=first_mask, mask_input=mask_input), progress=False)
    split = open_cache(cache32).split("val")
    cs = get_class_set("seed5")
    sam = build_random_sam("tiny", seed=0)
    rows = read_csv(tmp_path / "per_object.csv")
    assert len(rows) == record["objects"] > 5
    checked = 0
    for row_index in range(1):
        image_id = split.image_ids[row_index]
        labels, instances = split.labels[row_index], split.instances[row_index].astype(np.int32)
        objects = {(cs.class_names[o.class_index], o.object_id): o for o in objects_for_image(labels, instances, cs,
                                                                                                min_area=100)}
        valid = valid_mask(labels, cs)
        mine = [r for r in rows if r["image_id"] == image_id]
        assert {(r["class"], int(r["object_id"])) for r in mine} == set(objects)  # every object exactly once
        for r in mine:
            obj = objects[(r["class"], int(r["object_id"]))]
            assert int(r["area"]) == obj.area
            clicks, ious = json.loads(r["clicks"]), json.loads(r["ious"])
            assert len(clicks) == len(ious) <= MAX_CLICKS and clicks[0][2] == 1
            theirs = replay(split, row_index, sam, obj.mask, valid, clicks, first_mask, mask_input)
            np.testing.assert_allclose(ious, theirs, atol=1e-4)
            assert int(r["noc85"]) == noc(ious, 0.85, MAX_CLICKS) and int(r["noc90"]) == noc(ious, 0.90, MAX_CLICKS)
            checked += 1
    assert checked == len(rows)


def test_outputs_and_summary_follow_from_per_object_rows(cache16, tmp_path):
    record = run_clicks(clicks_cfg(cache16, tmp_path, limit=2, max_clicks=2, num_workers=1), progress=False)
    for name in ("per_object.csv", "summary.csv", "curve.png", "config.yaml", "run.json"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "visualizations").glob("*.png"))) == 1
    rows = read_csv(tmp_path / "per_object.csv")
    names = get_class_set("seed5").eval_names
    expected = summarize([{"class": r["class"], "ious": json.loads(r["ious"])} for r in rows], names, 2)
    got = read_csv(tmp_path / "summary.csv")
    assert [r["class"] for r in got] == [*names, "all"]
    for want, have in zip(expected, got):
        for key, value in want.items():
            if key != "class":
                assert (have[key] == "" and np.isnan(value)) or float(have[key]) == pytest.approx(value, abs=1e-6)
    assert record["random_weights"] and record["encoder_passes"] == 0
    assert record["clicks"] == sum(len(json.loads(r["ious"])) for r in rows)


def test_every_picture_is_kept_and_oracle_is_named(cache16, tmp_path, monkeypatch):
    """Stuff components are numbered per class: two classes' object 1 must not share a picture."""
    import samcache.pipeline.clicks as clicks_module

    drawn = {}
    monkeypatch.setattr(clicks_module, "save_click_overlay", lambda path, *args: drawn.__setitem__(path, args[-1]))
    record = run_clicks(clicks_cfg(cache16, tmp_path, limit=1, max_clicks=1, num_workers=0, visualize=50,
                                   first_mask="oracle"), progress=False)
    rows = read_csv(tmp_path / "per_object.csv")
    assert len(drawn) == record["objects"] == len(rows) > 1  # one picture per object, none overwritten
    assert len({r["object_id"] for r in rows}) < len(rows)  # ids repeat across classes here: the case at stake
    assert all("ORACLE" in title for title in drawn.values())


def test_clicks_cli_values_and_help(cache16, tmp_path):
    assert_one_line_error(invoke("clicks", "--cache", cache16, "--max-clicks", "0", "--out", tmp_path / "a"),
                          "--max-clicks")
    assert_one_line_error(invoke("clicks", "--cache", cache16, "--first-mask", "best", "--out", tmp_path / "a"),
                          "best")
    assert_one_line_error(invoke("clicks", "--cache", cache16, "--min-area", "100000000", "--out", tmp_path / "a"),
                          "no object of at least --min-area")
    assert not (tmp_path / "a").exists()
    text = invoke("clicks", "--help").stdout
    for flag in ("--max-clicks", "--first-click", "--first-mask", "--no-mask-input", "--min-area", "--stuff"):
        assert flag in text
