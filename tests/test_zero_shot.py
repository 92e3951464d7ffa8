"""Stage 2a: decoding from the cache equals upstream SamPredictor; prompts; metrics; outputs."""

import json

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from conftest import assert_one_line_error, invoke
from samcache.cache.reader import open_cache
from samcache.data.labels import IGNORE, get_class_set
from samcache.evaluation.metrics import IoUAccumulator
from samcache.features.backend import Prompts
from samcache.features.sam1.kernel import decode
from samcache.features.sam1.build import build_prompt_decoder, build_random_sam, build_sam
from samcache.evaluation.prompts import ClassRegion, center_point, instance_masks, sample_prompts
from samcache.pipeline.runs import read_csv
from samcache.features.sam1.preprocess import postprocess_logits, to_input_frame
from samcache.pipeline.configs import ZeroShotConfig
from samcache.pipeline.zero_shot import run_zero_shot


def intersection_union(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> tuple[int, int]:
    """Brute-force reference: intersection and union of two masks over the scored pixels."""
    pred, gt = pred & valid, gt & valid
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred | gt))


def predictor_on_cache(split, row, sam):
    """Upstream SamPredictor with the cached embedding in place of set_image."""
    p = SamPredictor(sam)
    p.features = torch.from_numpy(split.embedding(row).astype(np.float32))[None]
    p.original_size = tuple(int(v) for v in split.original_sizes[row])
    p.input_size = tuple(int(v) for v in split.input_sizes[row])
    p.is_image_set = True
    return p


def our_masks(split, rows, coords, labels, multimask=True):
    pe, md, _ = build_prompt_decoder("tiny", None, 0)
    emb = torch.from_numpy(np.stack([split.embedding(r) for r in rows]).astype(np.float32))
    size = tuple(int(v) for v in split.original_sizes[rows[0]])
    frame = np.stack([to_input_frame(c, size) for c in coords])
    logits, scores = decode(pe, md, emb, torch.arange(len(rows)),
                            Prompts(torch.tensor(frame, dtype=torch.float), torch.tensor(labels, dtype=torch.int)),
                            multimask)
    masks = postprocess_logits(logits, tuple(split.input_sizes[rows[0]]), size) > 0
    return masks.numpy(), scores.numpy()


def test_decoding_from_float32_cache_equals_sampredictor(cache32, synth_root):
    from samcache.data.cityscapes import list_images, read_image

    sam = build_random_sam("tiny", seed=0)
    val = open_cache(cache32).split("val")
    coords = np.array([[[100.0, 200.0], [300.0, 150.0]], [[400.0, 60.0], [20.0, 240.0]]])
    labels = np.array([[1, 0], [1, 1]])
    masks, scores = our_masks(val, [0, 1], coords, labels)  # two images in one decoder call
    for k, row in enumerate([0, 1]):
        p = SamPredictor(sam)
        p.set_image(read_image(list_images(synth_root, "val")[row].image_path))  # the full upstream path
        ref_masks, ref_scores, _ = p.predict(coords[k], labels[k], multimask_output=True)
        assert np.array_equal(masks[k], ref_masks)
        np.testing.assert_allclose(scores[k], ref_scores, rtol=1e-5, atol=1e-6)


def test_decoding_with_mask_input_equals_sampredictor_within_rounding(cache32):
    """With a mask input the first block's projections are split (image part once, 16-channel mask part per
    prompt): the logits equal upstream predict(mask_input=...) up to float rounding."""
    sam = build_random_sam("tiny", seed=0)
    val = open_cache(cache32).split("val")
    pe, md, _ = build_prompt_decoder("tiny", None, 0)
    size = tuple(int(v) for v in val.original_sizes[0])
    coords = np.array([[[100.0, 200.0], [300.0, 150.0]], [[40.0, 60.0], [200.0, 240.0]]])
    labels = np.array([[1, 0], [1, 1]])
    rng = np.random.default_rng(0)
    previous = rng.normal(0, 8, (2, 1, 256, 256)).astype(np.float32)
    emb = torch.from_numpy(val.embedding(0).astype(np.float32))[None]
    frame = np.stack([to_input_frame(c, size) for c in coords])
    prompts = Prompts(torch.tensor(frame, dtype=torch.float), torch.tensor(labels, dtype=torch.int),
                      mask_input=torch.from_numpy(previous))
    logits, scores = decode(pe, md, emb, torch.zeros(2, dtype=torch.long), prompts, False)
    for k in range(2):
        p = predictor_on_cache(val, 0, sam)
        _, ref_scores, ref_logits = p.predict(coords[k], labels[k], mask_input=previous[k], multimask_output=False,
                                              return_logits=True)
        np.testing.assert_allclose(logits[k].numpy(), ref_logits, rtol=0, atol=2e-5)
        np.testing.assert_allclose(scores[k].numpy(), ref_scores, rtol=0, atol=2e-6)


def test_float16_cache_masks_match_with_iou_099(cache16, cache32):
    sam = build_random_sam("tiny", seed=0)
    v16, v32 = open_cache(cache16).split("val"), open_cache(cache32).split("val")
    rng = np.random.default_rng(0)
    for row in range(len(v16)):
        coords = rng.uniform([0, 0], [511, 255], (1, 1, 2))
        masks, _ = our_masks(v16, [row], coords, np.ones((1, 1)))
        ref, _, _ = predictor_on_cache(v32, row, sam).predict(coords[0], np.ones(1), multimask_output=True)
        for a, b in zip(masks[0], ref):
            inter, union = np.logical_and(a, b).sum(), np.logical_or(a, b).sum()
            assert union == 0 or inter / union >= 0.99


def brute_force_boundary_distance(mask):
    """Distance of each mask pixel to the nearest non-mask pixel, the outside of the image included."""
    padded = np.pad(mask, 1)
    ys, xs = np.nonzero(~padded)
    out = np.zeros(mask.shape)
    for y, x in zip(*np.nonzero(mask)):
        out[y, x] = np.sqrt(((ys - (y + 1)) ** 2 + (xs - (x + 1)) ** 2).min())
    return out


def test_prompt_points_lie_where_they_claim():
    rng = np.random.default_rng(1)
    gt = np.zeros((30, 40), np.uint8)
    gt[5:20, 3:30] = 1  # class 1: a rectangle
    gt[22:28, 10:20] = 1  # and a second blob of 60 px
    gt[29, 0] = 1  # a 1-px fragment: too small for a prompt of its own
    gt[:, 35:] = IGNORE
    mask, valid = gt == 1, gt != IGNORE
    inst = np.zeros_like(gt, dtype=np.int32)
    for strategy in ("random", "multi"):
        (p,) = sample_prompts(strategy, ClassRegion(mask, valid, inst, False, rng, points=4, negatives=3))
        for (x, y), lab in zip(p.points.astype(int), p.point_labels):
            assert mask[y, x] if lab == 1 else (valid[y, x] and not mask[y, x])
        if strategy == "multi":
            assert list(p.point_labels) == [1] * 4 + [0] * 3
    (c,) = sample_prompts("center", ClassRegion(mask, valid, inst, False, rng))
    dist = brute_force_boundary_distance(mask)
    x, y = c.points[0].astype(int)
    assert dist[y, x] == dist.max()
    per = sample_prompts("per-instance", ClassRegion(mask, valid, inst, False, rng))
    assert len(per) == 2  # the two large connected components of a stuff class
    assert all(mask[int(p.points[0, 1]), int(p.points[0, 0])] for p in per)
    (b,) = sample_prompts("box", ClassRegion(mask, valid, inst, False, rng))
    assert b.box.tolist() == [0, 5, 29, 29]  # the fragment at (x=0, y=29) widens the box


def test_per_instance_uses_instance_ids_for_things():
    mask = np.zeros((40, 60), bool)
    mask[5:25, 5:25] = mask[5:25, 25:45] = True  # two touching cars: one component, two instances
    inst = np.zeros((40, 60), np.int32)
    inst[5:25, 5:25], inst[5:25, 25:45] = 26000, 26001
    parts = instance_masks(mask, inst, is_thing=True)
    assert len(parts) == 2
    for part, point in zip(parts, [center_point(p) for p in parts]):
        assert part[int(point[1]), int(point[0])]
    assert len(instance_masks(mask, inst, is_thing=False)) == 1


def test_iou_of_a_known_prediction_is_exact():
    gt = np.zeros((10, 10), bool)
    gt[0:4, 0:5] = True  # 20 px
    pred = np.zeros((10, 10), bool)
    pred[2:6, 0:5] = True  # 20 px, 10 overlap
    valid = np.ones((10, 10), bool)
    valid[5, :] = False  # one pred row ignored: 5 px of pred are void
    assert intersection_union(pred, gt, valid) == (10, 25)


def test_aggregations_match_a_hand_computed_example():
    acc = IoUAccumulator()
    acc.add("road", 1, 2)  # image 1: 0.5
    acc.add("road", 9, 10)  # image 2: 0.9
    acc.add("car", 1, 4)  # image 1 only: car absent from image 2, not counted
    rows = {r["class"]: r for r in acc.summary(["road", "car", "person"])}
    assert rows["road"]["iou_mean_over_images"] == pytest.approx(0.7)
    assert rows["road"]["iou_dataset"] == pytest.approx(10 / 12)
    assert rows["car"]["iou_mean_over_images"] == rows["car"]["iou_dataset"] == pytest.approx(0.25)
    assert np.isnan(rows["person"]["iou_dataset"])  # absent everywhere: no score, not a zero
    assert rows["mean"]["iou_mean_over_images"] == pytest.approx((0.7 + 0.25) / 2)
    assert rows["mean"]["iou_dataset"] == pytest.approx((10 / 12 + 0.25) / 2)


@pytest.mark.parametrize("prompt,multimask", [("random", "best-score"), pytest.param("box", "single", marks=pytest.mark.slow),
                                              pytest.param("multi", "oracle", marks=pytest.mark.slow),
                                              pytest.param("per-instance", "best-score", marks=pytest.mark.slow)])
def test_run_outputs_agree_with_sampredictor(cache32, tmp_path, prompt, multimask):
    """Every CSV row: replaying its prompts through upstream SamPredictor gives the reported IoU."""
    cfg = ZeroShotConfig(cache=str(cache32), split="val", prompt=prompt, multimask=multimask, out=str(tmp_path),
                         visualize=1, device="cpu", limit=2)
    record = run_zero_shot(cfg, progress=False)
    assert record["oracle"] == (multimask == "oracle") and record["random_weights"]
    for name in ("detailed_results.csv", "summary.csv", "config.yaml", "run.json"):
        assert (tmp_path / name).exists()
    assert len(list((tmp_path / "visualizations").glob("*.png"))) == 1
    sam = build_random_sam("tiny", seed=0)
    val = open_cache(cache32).split("val")
    cs = get_class_set("seed5")
    rows = read_csv(tmp_path / "detailed_results.csv")
    assert {r["multimask"] for r in rows} == {multimask}
    for r in rows:
        row = val.image_ids.index(r["image_id"])
        gt = cs.to_index(val.labels[row])
        c = cs.class_names.index(r["class"])
        pred = predictor_on_cache(val, row, sam)
        points, labels = np.array(json.loads(r["points"]), float), np.array(json.loads(r["point_labels"]))
        if prompt == "per-instance":
            prompts = [dict(point_coords=pt[None], point_labels=labels[i:i + 1]) for i, pt in enumerate(points)]
        elif prompt == "box":
            prompts = [dict(box=np.array(json.loads(r["box"]), float))]
        else:
            prompts = [dict(point_coords=points, point_labels=labels)]
        union = np.zeros(gt.shape, bool)
        for kw in prompts:
            masks, scores, _ = pred.predict(**kw, multimask_output=multimask != "single")
            if multimask == "oracle":
                ious = [intersection_union(m, gt == c, gt != IGNORE) for m in masks]
                masks = [masks[int(np.argmax([i / u if u else 0 for i, u in ious]))]]
            else:
                masks = [masks[int(np.argmax(scores))]]
            union |= masks[0]
        inter, uni = intersection_union(union, gt == c, gt != IGNORE)
        # several prompts share one decoder call here and not upstream: float32 sums may differ by
        # an ulp, which can flip a logit sitting at 0.0 -- allow two such boundary pixels
        assert float(r["iou"]) == pytest.approx(inter / uni, abs=max(1e-6, 2 / uni))


def test_checkpoint_that_does_not_match_the_cache_is_refused(cache32, tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(build_sam("tiny", seed=3)[0].state_dict(), path)
    proc = invoke("zero-shot", "--cache", cache32, "--checkpoint", path, "--out", tmp_path / "o")
    assert_one_line_error(proc, "RANDOM weights (seed 0) features", "tiny.pth")
    proc = invoke("zero-shot", "--cache", cache32, "--model-type", "vit_b", "--out", tmp_path / "o")
    assert_one_line_error(proc, "built with tiny, not vit_b")
    proc = invoke("zero-shot", "--cache", cache32, "--split", "test", "--out", tmp_path / "o")
    assert_one_line_error(proc, "no split 'test'")


def test_zero_shot_help():
    assert "--multimask" in invoke("zero-shot", "--help", check=True).stdout


def test_detailed_results_hold_each_present_class_once_and_the_summary_follows(cache16, tmp_path):
    import zarr

    run_zero_shot(ZeroShotConfig(cache=str(cache16), out=str(tmp_path), prompt="center", visualize=0, device="cpu"),
                  progress=False)
    val = zarr.open_group(str(cache16), mode="r")["val"]  # plain zarr, not samcache's reader
    cs = get_class_set("seed5")
    expected = {(str(image_id), cs.class_names[c]) for row, image_id in enumerate(val["image_ids"][:])
                for c in cs.eval_indices if (cs.lut[val["labels"][row]] == c).any()}
    rows = read_csv(tmp_path / "detailed_results.csv")
    assert len(rows) == len(expected) and {(r["image_id"], r["class"]) for r in rows} == expected
    summary = {r["class"]: r for r in read_csv(tmp_path / "summary.csv")}
    for name in cs.eval_names:
        mine = [r for r in rows if r["class"] == name]
        for r in mine:
            assert float(r["iou"]) == pytest.approx(int(r["intersection"]) / int(r["union"]), abs=1e-6)
        inter, union = sum(int(r["intersection"]) for r in mine), sum(int(r["union"]) for r in mine)
        assert float(summary[name]["iou_dataset"]) == pytest.approx(inter / union, abs=1e-6)
        assert float(summary[name]["iou_mean_over_images"]) == pytest.approx(
            np.mean([float(r["iou"]) for r in mine]), abs=1e-6)


def test_composed_label_maps_score_as_cityscapesscripts_does(cache32, synth_root, tmp_path):
    """iou_semantic (false positives counted) equals the official evaluation of the saved label maps."""
    from test_head import _official

    record = run_zero_shot(ZeroShotConfig(cache=str(cache32), out=str(tmp_path), prompt="per-instance",
                                          visualize=0, device="cpu", save_predictions=True, classes="cityscapes19",
                                          num_workers=0), progress=False)
    preds = sorted((tmp_path / "predictions").glob("*/*_labelIds.png"))
    theirs = _official(preds, synth_root, "cityscapes19")  # cityscapesScripts' evaluateImgLists
    ours = {r["class"]: r["iou_semantic"] for r in record["summary"]}
    assert len(preds) == 3
    for name in get_class_set("cityscapes19").eval_names:
        assert np.isnan(ours[name]) if np.isnan(theirs[name]) else ours[name] == pytest.approx(theirs[name], abs=1e-6)


def test_compose_by_score_against_a_per_pixel_loop():
    """The highest score covering a pixel wins; on equal scores the lowest index (argmax's first maximum)."""
    from samcache.evaluation.metrics import compose_by_score

    for seed in range(6):
        rng = np.random.default_rng(3 + seed)
        p = int(rng.integers(1, 8))
        masks = rng.random((p, 7, 9)) < 0.4
        # odd seeds: scores from 3 values, so equal scores overlap often (exact in float32)
        scores = rng.integers(0, 3, p) * 0.25 if seed % 2 else rng.random(p)
        classes = rng.integers(0, 5, p)
        got = compose_by_score(torch.from_numpy(masks), torch.from_numpy(scores), torch.from_numpy(classes), 9).numpy()
        for y in range(7):
            for x in range(9):
                covering = [k for k in range(p) if masks[k, y, x]]
                want = classes[max(covering, key=lambda k: scores[k])] if covering else 9  # max: first on ties
                assert got[y, x] == want, (seed, y, x)
    empty = compose_by_score(torch.zeros((0, 3, 4), dtype=torch.bool), torch.zeros(0), torch.zeros(0), 7)
    assert empty.shape == (3, 4) and (empty == 7).all()


def test_chunked_decoding_equals_one_call_and_budgets_fit_memory(cache32):
    from samcache.features.families import backend_for
    from samcache.features.sam1.backend import SamPromptDecoder
    from samcache.features.decoder import decode_chunked
    from samcache.features.memory import fits

    pe, md, _ = build_prompt_decoder("tiny", None, 0)
    val = open_cache(cache32).split("val")
    emb = torch.from_numpy(np.stack([val.embedding(r) for r in range(3)]))
    rng = np.random.default_rng(0)
    index = torch.tensor([0, 2, 1, 1, 0, 2, 2])
    coords = torch.tensor(rng.uniform(0, 1000, (7, 2, 2)), dtype=torch.float)
    labels = torch.tensor(rng.integers(0, 2, (7, 2)), dtype=torch.int)
    whole = decode(pe, md, emb, index, Prompts(coords, labels), True)
    for budget in (1, 3, 7):
        part = decode_chunked(backend_for("sam"), SamPromptDecoder(pe, md), {"embeddings": emb}, index,
                              Prompts(coords, labels), True, budget)
        for a, b in zip(part, whole):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    gib = 2**30
    assert fits(free_bytes=10 * gib, fixed_bytes=gib, per_item_bytes=25 * 2**20, cap=4096) == 286
    assert fits(free_bytes=gib, fixed_bytes=2 * gib, per_item_bytes=2**20, cap=64) == 1  # never below one
    assert fits(free_bytes=100 * gib, fixed_bytes=0, per_item_bytes=2**20, cap=64) == 64


def test_device_prompts_equal_the_workers_prompts():
    """random and center drawn on the labels' device (here CPU tensors) equal prompts.image_prompts, seed for seed."""
    from scipy.ndimage import gaussian_filter

    from samcache.evaluation.device_prompts import device_image_prompts
    from samcache.evaluation.prompts import image_prompts

    cs = get_class_set("seed5")
    as_list = lambda prompts: [(c, p.points.tolist(), p.point_labels.tolist()) for c, p in prompts]  # noqa: E731
    for seed in range(12):
        rng = np.random.default_rng(seed)
        field = gaussian_filter(rng.random((30, 41)), 3)
        class_map = np.digitize(field, np.quantile(field, [0.2, 0.4, 0.6, 0.8])).astype(np.uint8)
        class_map[rng.random(class_map.shape) < 0.05] = IGNORE
        if seed % 3 == 0:
            class_map[class_map == 2] = IGNORE  # an absent class
        for strategy in ("random", "center"):
            host = image_prompts(strategy, cs, class_map, np.zeros(class_map.shape, np.int32),
                                 np.random.default_rng([1, seed]))
            device = device_image_prompts(strategy, cs, torch.from_numpy(class_map), np.random.default_rng([1, seed]))
            assert as_list(device) == as_list(host), (seed, strategy)
            for c, p in host:  # and each point is where the strategy says
                x, y = p.points[0].astype(int)
                assert class_map[y, x] == c
                if strategy == "center":
                    assert (x, y) == tuple(center_point(class_map == c).astype(int))


def test_zero_shot_run_with_prompts_sampled_on_the_device(cache16, tmp_path, monkeypatch):
    import samcache.pipeline.zero_shot as zs

    base = dict(cache=str(cache16), prompt="center", limit=1, device="cpu", num_workers=0, visualize=0)
    run_zero_shot(ZeroShotConfig(**base, out=str(tmp_path / "host")), progress=False)
    monkeypatch.setattr(zs, "sample_on_device", lambda cfg, device: True)
    run_zero_shot(ZeroShotConfig(**base, out=str(tmp_path / "device")), progress=False)
    host, device = (read_csv(tmp_path / name / "detailed_results.csv") for name in ("host", "device"))
    assert host == device and len(host) > 1


def test_a_picture_that_cannot_be_drawn_is_skipped_and_the_run_kept(cache16, tmp_path):
    import shutil

    import zarr

    from samcache.data.synth import write_synthetic
    from samcache.evaluation.visualize import save_click_overlay

    data = tmp_path / "data"  # the data changed since extraction: other sizes
    write_synthetic(data, {"val": 3}, size=(64, 32), seed=0, progress=False)
    cache = tmp_path / "c.zarr"
    shutil.copytree(cache16, cache)
    zarr.open_group(str(cache), mode="r+")["val"].attrs["data_root"] = str(data)
    out = tmp_path / "zs"
    proc = invoke("zero-shot", "--cache", cache, "--out", out, "--device", "cpu", "--num-workers", "0",
                  "--visualize", "1", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert "picture" in proc.stderr and "skipped" in proc.stderr and "64x32" in proc.stderr
    assert " on 1 image in " in proc.stdout and "1 images" not in proc.stdout
    assert (out / "summary.csv").is_file() and json.loads((out / "run.json").read_text())["status"] == "complete"
    mask = np.zeros((256, 512), bool)
    mask[10:40, 10:40] = True
    image = np.zeros((32, 64, 3), np.uint8)
    with pytest.warns(Warning, match="skipped"):
        assert save_click_overlay(tmp_path / "c.png", image, mask, mask, [(20, 20, 1)], [1.0], "t") is False
    assert not (tmp_path / "c.png").exists()


def test_no_evaluated_class_is_one_true_error_in_zero_shot_and_clicks(cache16, tmp_path):
    import shutil

    import zarr

    cache = tmp_path / "c.zarr"
    shutil.copytree(cache16, cache)
    val = zarr.open_group(str(cache), mode="r+")["val"]
    val["labels"][:] = 0  # unlabeled everywhere
    val["instances"][:] = 0
    common = ["--cache", cache, "--device", "cpu", "--num-workers", "0", "--visualize", "0", "--limit", "1"]
    for command in ("zero-shot", "clicks"):
        proc = invoke(command, *common, "--out", tmp_path / command)
        line = assert_one_line_error(proc, "nothing to score", "evaluated class of class set seed5", "--classes")
        assert "min-area" not in line
        assert not (tmp_path / command).exists()
