"""`everything` equals upstream's automatic mask generator, RLE for RLE, on cached features.

The reference is upstream's own ``generate(image)`` (``SamAutomaticMaskGenerator`` / ``SAM2AutomaticMaskGenerator``
with ``output_mode="coco_rle"``), which runs the image encoder itself through ``set_image``; samcache decodes the
cache and never builds the encoder. Thresholds are low enough that random weights keep masks; a high NMS threshold
of 1.0 keeps them all (random weights give noisy masks whose boxes are the whole image: any lower threshold
keeps one, which the default-threshold case checks).
"""

from __future__ import annotations

import numpy as np
import pytest

import samcache
from conftest import SAM2_MODEL
from samcache.evaluation.everything import masks_of
from samcache.evaluation.visualize import source_image

TINY = dict(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)


ROUNDING = 1e-4  # |logit| below which a pixel's side of the threshold is float rounding (logits agree to ~1e-6)


def assert_same_records(ours: list[dict], ref: list[dict], least: int, logits_of, fills_holes: bool = False) -> int:
    """Record for record equal; a mask may differ from upstream's only in pixels whose upstream logit is within
    ROUNDING of the threshold (samcache's batched decoder equals upstream's up to float rounding), checked with
    ``logits_of(record)``: upstream's (full-resolution, low-res) logits of that record's mask. With SAM 2.1's
    low-res hole filling (``fills_holes``) a rounding flip at low resolution may change a filled component: then
    the mask must have a low-res logit within ROUNDING of the threshold and differ in at most 1% of its area.
    Returns how many differ."""
    assert len(ours) == len(ref) >= least
    differing = 0
    for a, b in zip(ours, ref):
        if a["segmentation"] != b["segmentation"]:  # COCO RLE: size and counts string
            differing += 1
            diff = masks_of([a])[0] ^ masks_of([b])[0]
            full, low_res = logits_of(b)
            if np.abs(full[diff]).max() >= ROUNDING:  # SAM 2.1's hole filling: a low-res pixel that rounding put
                # on the other side of the threshold joins or splits a small component, which is then filled
                assert fills_holes and np.abs(low_res).min() < ROUNDING and diff.sum() <= b["area"] // 100
            assert abs(a["area"] - b["area"]) <= diff.sum()
        else:
            assert a["area"] == b["area"] and a["bbox"] == b["bbox"]
        assert a["crop_box"] == b["crop_box"]
        np.testing.assert_allclose(a["point_coords"], b["point_coords"], rtol=1e-6)
        assert a["predicted_iou"] == pytest.approx(b["predicted_iou"], abs=1e-5)
        # counts of pixels above +-1: a logit on either side of a cut by float rounding moves it by 1/area
        if abs(a["stability_score"] - b["stability_score"]) > 1e-4:  # a filled component that rounding changed
            assert fills_holes and np.abs(logits_of(b)[1]).min() < ROUNDING
            assert a["stability_score"] == pytest.approx(b["stability_score"], abs=1e-2)
    assert set(ours[0]) == set(ref[0])
    assert differing <= len(ref) // 10
    return differing


def sam1_logits(model, image):
    """record -> upstream SamPredictor's full-resolution logits of the record's mask (its point, the candidate
    whose predicted IoU it has)."""
    from segment_anything import SamPredictor

    return predictor_logits(SamPredictor(model), image)


def upstream_sam1(model, image, **options) -> list[dict]:
    from segment_anything import SamAutomaticMaskGenerator

    return SamAutomaticMaskGenerator(model, output_mode="coco_rle", **options).generate(image)


@pytest.mark.parametrize("extra", [pytest.param({}, marks=pytest.mark.slow), {"min_mask_region_area": 400},
                                   pytest.param({"box_nms_thresh": 0.7}, marks=pytest.mark.slow)])
def test_tiny_sam1_equals_upstream_generate(cache32, extra):
    pytest.importorskip("cv2")  # upstream's small-region pass
    from samcache.features.sam1.build import build_random_sam

    split = samcache.open_cache(str(cache32)).split("val")
    image_id = split.image_ids[1]
    options = {**TINY, **extra}
    ours = samcache.everything(str(cache32), "val", image_id, None, device="cpu", **options)
    sam, image = build_random_sam("tiny", seed=0), source_image(split, image_id)
    ref = upstream_sam1(sam, image, **options)
    assert_same_records(ours, ref, 1 if extra.get("box_nms_thresh") else 2, sam1_logits(sam, image))


def test_crop_layers_are_refused_in_one_line(cache32):
    with pytest.raises(samcache.SamcacheError, match="crop"):
        samcache.everything(str(cache32), "val", 0, None, device="cpu", crop_n_layers=1)


def scipy_components(mask):
    """sam2's CUDA ``get_connected_components`` (8-connected labels and each pixel's component area), computed with
    scipy.ndimage: upstream skips its low-resolution hole filling without the extension, so the test supplies it."""
    import torch
    from scipy import ndimage

    masks = mask.cpu().numpy().astype(bool)
    labels, areas = np.zeros(masks.shape, np.int32), np.zeros(masks.shape, np.int32)
    for k in range(len(masks)):
        lab, _ = ndimage.label(masks[k, 0], structure=np.ones((3, 3)))
        labels[k, 0] = lab
        areas[k, 0] = np.where(lab > 0, np.bincount(lab.ravel())[lab], 0)
    return torch.from_numpy(labels), torch.from_numpy(areas)


def sam2_logits(model, image):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return predictor_logits(SAM2ImagePredictor(model), image)


def predictor_logits(predictor, image):
    """record -> an upstream predictor's (full-resolution, low-res) logits of the record's mask: its point, the
    candidate whose predicted IoU it has. The image is encoded on first use."""
    def logits_of(record: dict) -> tuple[np.ndarray, np.ndarray]:
        if not getattr(predictor, "_samcache_test_set", False):  # the encoder runs only if a mask differs
            predictor.set_image(image)
            predictor._samcache_test_set = True
        logits, scores, low_res = predictor.predict(np.array(record["point_coords"]), np.array([1]),
                                                    return_logits=True)
        k = int(np.argmin(np.abs(scores - record["predicted_iou"])))
        return logits[k], low_res[k]

    return logits_of


@pytest.mark.parametrize("extra", [pytest.param({}, marks=pytest.mark.slow), {"min_mask_region_area": 30}])
def test_sam2_equals_upstream_generate(sam2_cache, sam2_checkpoint, monkeypatch, extra):
    pytest.importorskip("cv2")
    import sam2.utils.misc
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    from samcache.features.sam2.build import build_sam2

    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", scipy_components)
    split = samcache.open_cache(str(sam2_cache)).split("val")
    image_id = split.image_ids[0]
    options = {**TINY, **extra}
    ours = samcache.everything(str(sam2_cache), "val", image_id, str(sam2_checkpoint), device="cpu", **options)
    model = build_sam2(SAM2_MODEL, str(sam2_checkpoint), 0)[0]
    image = source_image(split, image_id)
    ref = SAM2AutomaticMaskGenerator(model, output_mode="coco_rle", **options).generate(image)
    assert_same_records(ours, ref, 2, sam2_logits(model, image), fills_holes="min_mask_region_area" in extra)


@pytest.mark.slow  # a random ViT-B encodes the image twice and upstream decodes 64 points at 512x256: ~4.5 min
def test_official_format_vit_b_equals_upstream_generate(synth_root, vit_b_checkpoint, tmp_path):
    """The issue's check: an official-format ViT-B checkpoint (random weights), a denser grid, the cache built by
    `samcache extract --checkpoint` and the generator's masks against upstream's on the same image."""
    from conftest import extract_cfg
    from samcache.pipeline.extract import extract

    path, sam = vit_b_checkpoint
    cache = tmp_path / "vit_b.zarr"
    extract(extract_cfg(synth_root, cache, "val", model_type="vit_b", checkpoint=str(path), limit=1), progress=False)
    split = samcache.open_cache(str(cache)).split("val")
    image_id = split.image_ids[0]
    for options in ({**TINY, "points_per_side": 8}, {**TINY, "points_per_side": 8, "box_nms_thresh": 0.7,
                                                      "min_mask_region_area": 100}):
        ours = samcache.everything(str(cache), "val", image_id, str(path), device="cpu", **options)
        image = source_image(split, image_id)
        ref = upstream_sam1(sam, image, **options)
        assert_same_records(ours, ref, 2 if options["box_nms_thresh"] == 1.0 else 1, sam1_logits(sam, image))
