"""Every API entry that takes a split decodes it only with the weights that made it: a split of another cache
made by the same weights decodes exactly as upstream computes it from the image; one made by other weights
(another seed, another family) is a one-line error naming both fingerprints, never a silent wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

import samcache
from conftest import SIZE, extract_cfg
from samcache.data.cityscapes import list_images, read_image
from samcache.errors import SamcacheError

POINTS = np.array([[120.0, 90.0], [300.0, 200.0]])
LABELS = np.array([1, 0])


@pytest.fixture(scope="module")
def other_caches(tmp_path_factory):
    """Two one-image caches of another synthetic scene: seed 0 (cache32's weights) and seed 1 (other weights)."""
    from samcache.data.synth import write_synthetic
    from samcache.pipeline.extract import extract

    base = tmp_path_factory.mktemp("other")
    root = base / "data"
    write_synthetic(root, {"val": 1}, size=SIZE, seed=7, progress=False)
    caches = {seed: base / f"seed{seed}.zarr" for seed in (0, 1)}
    for seed, path in caches.items():
        extract(extract_cfg(root, path, "val", seed=seed), progress=False)
    return root, caches


def _upstream(root, seed: int):
    """segment-anything's own SamPredictor with tiny's random weights of ``seed``, after set_image."""
    from segment_anything import SamPredictor

    from samcache.features.sam1.build import build_random_sam

    predictor = SamPredictor(build_random_sam("tiny", seed=seed))
    predictor.set_image(read_image(list_images(root, "val")[0].image_path))
    return predictor


def _assert_same(ours, theirs):
    assert np.array_equal(ours[0], np.asarray(theirs[0]).astype(bool))
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-4, atol=1e-4)


def _one_line(exc_info, *needles):
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_a_split_of_another_cache_with_the_same_weights_decodes_as_upstream(cache32, synth_root, other_caches):
    root, caches = other_caches
    other = samcache.open_cache(caches[0]).split("val")
    dec = samcache.Decoder(cache32, device="cpu")  # weights: tiny, seed 0, as other's
    reference = _upstream(root, 0).predict(POINTS, LABELS)
    _assert_same(dec.predict(other, 0, points=POINTS, labels=LABELS), reference)
    _assert_same(dec.predict_batch(other, [samcache.PromptRequest(0, POINTS, LABELS)])[0], reference)
    _assert_same(samcache.predictor(cache32, other, 0, device="cpu").predict(POINTS, LABELS), reference)
    back = samcache.Decoder(caches[0], device="cpu").predict(samcache.open_cache(cache32).split("val"), 0,
                                                             points=POINTS, labels=LABELS)
    upstream = _upstream(synth_root, 0)
    _assert_same(back, upstream.predict(POINTS, LABELS))


def test_a_split_of_other_weights_is_refused_everywhere(cache32, other_caches):
    _, caches = other_caches
    foreign = samcache.open_cache(caches[1]).split("val")  # seed 1: same shapes, other weights
    dec = samcache.Decoder(cache32, device="cpu")
    needles = ("seed 1", "seed 0", str(caches[1]))
    with pytest.raises(SamcacheError) as e:
        dec.predict(foreign, 0, points=POINTS, labels=LABELS)
    _one_line(e, *needles, "this Decoder")
    with pytest.raises(SamcacheError) as e:
        dec.predict_batch(foreign, [samcache.PromptRequest(0, POINTS, LABELS)])
    _one_line(e, *needles)
    cache = samcache.open_cache(cache32)
    with pytest.raises(SamcacheError) as e:
        samcache.predictor(cache, foreign, 0, device="cpu")
    _one_line(e, *needles, str(cache32))
    predictor = samcache.predictor(cache, "val", 0, device="cpu")
    with pytest.raises(SamcacheError) as e:
        samcache.set_precomputed(predictor, foreign, 0)
    _one_line(e, *needles, "this predictor")
    # the foreign split's own cache decodes it, as upstream with seed 1 does
    root = other_caches[0]
    _assert_same(samcache.Decoder(caches[1], device="cpu").predict("val", 0, points=POINTS, labels=LABELS),
                 _upstream(root, 1).predict(POINTS, LABELS))


def test_a_head_is_evaluated_only_on_features_of_its_weights(cache32, other_caches):
    _, caches = other_caches
    model, _ = samcache.fit_head(cache32, "train", "val", epochs=1, batch_size=2, width=8, num_workers=0,
                                 device="cpu", seed=0)
    same = samcache.open_cache(caches[0]).split("val")
    assert set(samcache.evaluate_head(model, cache32, same, device="cpu")) >= {"mean"}
    for cache, split in ((cache32, samcache.open_cache(caches[1]).split("val")), (caches[1], "val")):
        with pytest.raises(SamcacheError) as e:
            samcache.evaluate_head(model, cache, split, device="cpu")
        _one_line(e, "seed 1", "seed 0")


def test_a_split_of_another_family_is_one_line_not_a_key_error(cache32, sam2_cache):
    sam2_split = samcache.open_cache(sam2_cache).split("val")
    with pytest.raises(SamcacheError) as e:
        samcache.Decoder(cache32, device="cpu").predict(sam2_split, 0, points=POINTS, labels=LABELS)
    _one_line(e, "sam2.1_hiera_t", "tiny")
    predictor = samcache.predictor(cache32, "val", 0, device="cpu")
    with pytest.raises(SamcacheError) as e:
        samcache.set_precomputed(predictor, sam2_split, 0)
    _one_line(e, "SAM2ImagePredictor", "SamPredictor")
