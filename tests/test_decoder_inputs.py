"""Decoder.predict / predict_batch check their prompts first: each malformed one is a one-line SamcacheError
naming the argument (never a numpy or torch error, never NaN scores), and what upstream's prompt encoder
accepts (padding labels, points outside the image, a box given as (1, 4)) decodes exactly as upstream."""

from __future__ import annotations

import numpy as np
import pytest

import samcache
from samcache.data.cityscapes import list_images, read_image
from samcache import PromptRequest
from samcache.errors import SamcacheError

POINT = [[100.0, 120.0]]
BAD = [
    (dict(box=[0, 0, 10]), "box must be 4 numbers x0, y0, x1, y1, got shape (3,)"),
    (dict(box=[[0, 0], [10, 10]]), "box must be 4 numbers"),
    (dict(box=[50, 0, 10, 10]), "box must have x0 <= x1 and y0 <= y1"),
    (dict(box=[0, 0, np.inf, 10]), "box must be finite"),
    (dict(points=POINT, labels=[1], mask_input=np.zeros((1, 64, 64))), "mask_input must be (1, 256, 256)"),
    (dict(points=POINT, labels=[1], mask_input=np.zeros((256, 256))), "mask_input must be (1, 256, 256)"),
    (dict(points=POINT, labels=[1], mask_input=np.full((1, 256, 256), np.nan)), "mask_input must be finite"),
    (dict(points=[[np.nan, 120.0]], labels=[1]), "points must be finite"),
    (dict(points=[100.0, 120.0], labels=[1]), "points must be (N, 2) [x, y] pairs, got shape (2,) (one point is"),
    (dict(points=[[1, 2, 3]], labels=[1]), "points must be (N, 2)"),
    (dict(points=[["a", "b"]], labels=[1]), "points must be numbers"),
    (dict(points=POINT), "points need labels"),
    (dict(points=POINT, labels=[1, 0]), "labels must be (N,), one per point: 1 points"),
    (dict(points=POINT, labels=[2]), "point labels must be 1 (foreground), 0 (background) or -1 (padding), got 2"),
    (dict(points=POINT, labels=[0.5]), "got 0.5"),
    (dict(labels=[1], box=[0, 0, 5, 5]), "labels were given without points"),
    (dict(), "a prompt needs points (with labels) or a box"),
    (dict(points=np.zeros((0, 2)), labels=[]), "a prompt needs points (with labels) or a box"),
    (dict(box=[0, 0, 5, 5], multimask="no"), "multimask must be True or False"),
]


@pytest.fixture(scope="module")
def dec(cache32):
    return samcache.Decoder(cache32, device="cpu")


@pytest.fixture(scope="module")
def upstream(synth_root):
    """segment-anything's own SamPredictor (tiny, seed 0: cache32's weights) after set_image of val row 0."""
    from segment_anything import SamPredictor

    from samcache.features.sam1.build import build_random_sam

    predictor = SamPredictor(build_random_sam("tiny", seed=0))
    predictor.set_image(read_image(list_images(synth_root, "val")[0].image_path))
    return predictor


@pytest.mark.parametrize("kwargs, message", BAD)
def test_malformed_prompts_are_one_line_errors(dec, kwargs, message):
    with pytest.raises(SamcacheError) as e:
        dec.predict("val", 0, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_batch_names_its_malformed_request_and_decodes_nothing(dec):
    good = PromptRequest(0, points=POINT, labels=[1])
    with pytest.raises(SamcacheError, match=r"^prompt 1: box must be 4 numbers"):
        dec.predict_batch("val", [good, PromptRequest(1, box=[0, 0, 5])])
    with pytest.raises(SamcacheError, match="takes a list of PromptRequest"):
        dec.predict_batch("val", [good, {"image_id": 0}])
    with pytest.raises(SamcacheError, match="no image 'nowhere_000000_000000'"):
        dec.predict_batch("val", [PromptRequest("nowhere_000000_000000", points=POINT, labels=[1])])
    assert dec.predict_batch("val", []) == []


def test_mask_input_size_is_the_familys_low_res():
    """SAM 3's tracker takes (1, 288, 288) masks: the check uses the family's low_res, not SAM 1's 256."""
    from samcache.evaluation.requests import check_request

    with pytest.raises(SamcacheError, match=r"mask_input must be \(1, 288, 288\)"):
        check_request(PromptRequest(0, box=[0, 0, 5, 5], mask_input=np.zeros((1, 256, 256))), 288)
    ok = check_request(PromptRequest(0, box=[[0, 0, 5, 5]], mask_input=np.zeros((1, 288, 288))), 288)
    assert ok.box.shape == (4,) and ok.mask_input.dtype == np.float32


def _assert_same(ours, theirs):
    assert np.array_equal(ours[0], np.asarray(theirs[0]).astype(bool))
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-4, atol=1e-4)


def test_what_upstream_accepts_decodes_as_upstream(dec, upstream):
    height, width = dec.cache.split("val").original_size(0)
    outside = np.array([[-40.0, 30.0], [width + 25.0, height + 10.0], [200.0, 100.0]])  # documented: allowed
    padded = np.array([1, -1, 0])  # -1: upstream's padding token
    _assert_same(dec.predict("val", 0, points=outside, labels=padded), upstream.predict(outside, padded))
    box = np.array([[30.0, 20.0, 260.0, 200.0]])  # (1, 4), as upstream also takes it
    _assert_same(dec.predict("val", 0, box=box, multimask=False), upstream.predict(box=box[0], multimask_output=False))
    first = upstream.predict(np.array(POINT), np.array([1]), multimask_output=False)
    _assert_same(dec.predict("val", 0, points=POINT, labels=[True], mask_input=first[2]),
                 upstream.predict(np.array(POINT), np.array([1]), mask_input=first[2]))
