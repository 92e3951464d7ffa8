"""Points, boxes and clicks on a SAM 3 cache, and the notebook predictor, against upstream.

The reference is upstream end to end: ``Sam3Processor.set_image`` on the image itself, with the trunk's
output replaced by the cached one (as the SAM 1 tests hand the cached embedding to ``SamPredictor``), then
``Sam3Image.predict_inst`` for points and boxes and ``set_text_prompt`` for phrases. Every IoU a run
records must come out of that replay.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

pytest.importorskip("sam3")

import torch  # noqa: E402

import samcache  # noqa: E402
from samcache.cache.reader import open_cache  # noqa: E402
from samcache.data.cityscapes import list_images, read_image  # noqa: E402
from samcache.data.labels import IGNORE, get_class_set  # noqa: E402
from samcache.pipeline.clicks import run_clicks  # noqa: E402
from samcache.pipeline.configs import ZeroShotConfig  # noqa: E402
from samcache.pipeline.runs import read_csv  # noqa: E402
from samcache.pipeline.zero_shot import run_zero_shot  # noqa: E402
from test_clicks_run import clicks_cfg, expected_objects, replay_with  # noqa: E402
from test_clicks_ritm import ritm_noc  # noqa: E402
from test_zero_shot import intersection_union  # noqa: E402

POINTS = np.array([[100.0, 200.0], [300.0, 150.0]])
LABELS = np.array([1, 0])


@pytest.fixture(scope="module")
def upstream(sam3_cache, synth_root):
    """(model, processor, state) for the cache's image: upstream ``set_image`` with the cached trunk output."""
    import PIL.Image

    from samcache.features.sam3 import compat as sam3_compat
    from samcache.features.sam3.build import build_random_sam3

    model = build_random_sam3("sam3_tiny", 0)  # the cache's weights: random, seed 0
    cached = torch.from_numpy(np.asarray(open_cache(sam3_cache).split("val").features(0)["trunk"]))[None]
    hook = model.backbone.vision_backbone.trunk.register_forward_hook(lambda module, inputs, output: [cached])
    processor = sam3_compat.processor_for(model, confidence_threshold=0.0)  # keep every query
    try:
        state = processor.set_image(PIL.Image.fromarray(read_image(list_images(synth_root, "val")[0].image_path)))
    finally:
        hook.remove()
    return model, processor, state


def predict_inst(model, state, **kwargs):
    """``model.predict_inst`` with its float 0/1 masks as bool, as SamPredictor returns them."""
    masks, scores, low_res = model.predict_inst(state, **kwargs)
    return masks.astype(bool), scores, low_res


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_clicks_on_a_sam3_cache_replay_through_predict_inst(sam3_cache, upstream, tmp_path):
    model, _, state = upstream
    record = run_clicks(clicks_cfg(sam3_cache, tmp_path), progress=False)
    assert record["random_weights"] and record["provenance"]["model"] == "sam3_tiny"
    split = open_cache(sam3_cache).split("val")
    cs = get_class_set("seed5")
    labels, instances = split.labels[0], split.instances[0].astype(np.int32)
    objects = expected_objects(labels, instances, cs, min_area=100)
    valid = cs.lut[labels] != IGNORE
    rows = read_csv(tmp_path / "per_object.csv")
    assert sorted((r["class"], int(r["object_id"])) for r in rows) == sorted(objects) and len(rows) > 3
    predict = functools.partial(predict_inst, model, state)
    for r in rows:
        clicks, ious = json.loads(r["clicks"]), json.loads(r["ious"])
        theirs = replay_with(predict, objects[(r["class"], int(r["object_id"]))], valid, clicks, "best-score")
        np.testing.assert_allclose(ious, theirs, atol=1e-4)
        padded = ious + [ious[-1]] * (4 - len(ious))
        assert int(r["noc85"]) == ritm_noc(padded, 0.85, 4)


@pytest.mark.parametrize("prompt,multimask", [("multi", "best-score"),  # boxes: make test-slow
                                             pytest.param("box", "single", marks=pytest.mark.slow)])
def test_point_and_box_prompts_on_a_sam3_cache_replay_through_predict_inst(sam3_cache, upstream, tmp_path,
                                                                           prompt, multimask):
    model, _, state = upstream
    cfg = ZeroShotConfig(cache=str(sam3_cache), split="val", prompt=prompt, multimask=multimask, out=str(tmp_path),
                         visualize=0, device="cpu")
    run_zero_shot(cfg, progress=False)
    split = open_cache(sam3_cache).split("val")
    cs = get_class_set("seed5")
    gt = cs.to_index(split.labels[0])
    rows = read_csv(tmp_path / "detailed_results.csv")
    assert len(rows) >= 3
    for r in rows:
        c = cs.class_names.index(r["class"])
        if prompt == "box":
            kwargs = dict(box=np.array(json.loads(r["box"]), float))
        else:
            kwargs = dict(point_coords=np.array(json.loads(r["points"]), float),
                          point_labels=np.array(json.loads(r["point_labels"])))
        masks, scores, _ = predict_inst(model, state, **kwargs, multimask_output=multimask != "single")
        inter, union = intersection_union(masks[int(np.argmax(scores))], gt == c, gt != IGNORE)
        assert float(r["iou"]) == pytest.approx(inter / union, abs=max(1e-6, 2 / union))


def test_cache_predictor_is_a_sam3_processor_as_set_image_left_it(sam3_cache, upstream):
    model, processor, state = upstream
    ours = samcache.predictor(sam3_cache, "val", 0, device="cpu")
    assert type(ours).__name__ == "Sam3Processor" and ours.device == "cpu"
    assert (ours.state["original_height"], ours.state["original_width"]) == (state["original_height"],
                                                                              state["original_width"])
    for kwargs in (dict(point_coords=POINTS, point_labels=LABELS), dict(box=np.array([40.0, 30.0, 260.0, 200.0])),
                   dict(point_coords=POINTS[:1], point_labels=LABELS[:1], multimask_output=False)):
        mine = ours.model.predict_inst(ours.state, **kwargs)
        theirs = model.predict_inst(state, **kwargs)
        assert np.array_equal(mine[0], theirs[0])
        np.testing.assert_allclose(mine[1], theirs[1], atol=1e-6)
        np.testing.assert_allclose(mine[2], theirs[2], atol=1e-5)
    ours.confidence_threshold = 0.0  # keep every query, as the reference does
    mine = ours.set_text_prompt("car", ours.state)
    theirs = processor.set_text_prompt("car", state)
    assert len(theirs["scores"]) > 0
    torch.testing.assert_close(mine["scores"], theirs["scores"], atol=1e-6, rtol=0)
    torch.testing.assert_close(mine["masks_logits"], theirs["masks_logits"], atol=1e-6, rtol=0)


def test_the_readme_sam3_block_runs_as_written(sam3_cache, upstream):
    from pathlib import Path

    from docs_text import code as documented

    code = documented("sam3-api")
    for old, new in (('"cache/cityscapes_sam3.zarr"', repr(str(sam3_cache))),
                     ('"checkpoints/sam3.pt"', "None")):  # a random-weight cache has no checkpoint
        assert old in code, old
        code = code.replace(old, new)
    namespace = {}
    exec(compile(code, "docs/sam3.md", "exec"), namespace)
    model, _, state = upstream
    theirs = predict_inst(model, state, point_coords=[[500.0, 600.0]], point_labels=[1], multimask_output=True)
    assert np.array_equal(namespace["masks"].astype(bool), theirs[0])
    np.testing.assert_allclose(namespace["scores"], theirs[1], atol=1e-6)
