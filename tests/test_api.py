"""The notebook API: open a cache without torch, hand cached features to upstream's own predictors, decode
prompts in original pixels, fit a head and get it back. Every check is against upstream or the official
evaluation, never against samcache itself."""

import subprocess
import sys

import numpy as np
import pytest

import samcache
from conftest import SAM2_MODEL
from samcache.data.cityscapes import list_images, read_image
from samcache.errors import SamcacheError

POINTS = np.array([[100.0, 200.0], [300.0, 150.0]])
LABELS = np.array([1, 0])
BOX = np.array([40.0, 30.0, 260.0, 200.0])


def test_open_cache_and_read_features_import_no_torch(cache16):
    code = (f"import sys, samcache\n"
            f"split = samcache.open_cache({str(cache16)!r}).split('val')\n"
            f"maps = split.features(split.image_ids[0])\n"
            f"assert maps['embeddings'].shape == (256, 64, 64), maps['embeddings'].shape\n"
            f"assert split.label_ids(split.image_ids[0]).shape == split.original_size(split.image_ids[0])\n"
            f"loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'segment_anything', 'sam2')]\n"
            f"assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_split_accessors_agree_with_plain_zarr(cache16):
    import zarr

    split = samcache.open_cache(cache16).split("val")
    group = zarr.open_group(str(cache16), mode="r")["val"]
    for row, image_id in enumerate(split.image_ids):
        assert str(group["image_ids"][row]) == image_id
        assert np.array_equal(split.features(image_id)["embeddings"], group["embeddings"][row])
        assert np.array_equal(split.label_ids(image_id), group["labels"][row])
        assert np.array_equal(split.instance_ids(image_id), group["instances"][row])
        assert split.original_size(image_id) == tuple(group["original_sizes"][row])
    with pytest.raises(SamcacheError, match="no image"):
        split.features("nowhere_000000_000000")


def _upstream_sam1(synth_root, row):
    from segment_anything import SamPredictor

    from samcache.features.sam1.build import build_random_sam

    predictor = SamPredictor(build_random_sam("tiny", seed=0))
    predictor.set_image(read_image(list_images(synth_root, "val")[row].image_path))
    return predictor


def _assert_same_prediction(ours, theirs):
    masks, scores, low_res = ours
    ref_masks, ref_scores, ref_low_res = theirs
    assert np.array_equal(np.asarray(masks).astype(bool), np.asarray(ref_masks).astype(bool))
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(low_res, ref_low_res, rtol=1e-4, atol=1e-4)


def test_cache_predictor_equals_set_image_sam1(cache32, synth_root):
    cache = samcache.open_cache(cache32)
    val = cache.split("val")
    for row in range(2):
        image_id = val.image_ids[row]
        ours = samcache.predictor(cache, val, image_id, device="cpu")  # random-weight cache: no checkpoint
        reference = _upstream_sam1(synth_root, row)
        for kwargs in ({"point_coords": POINTS, "point_labels": LABELS}, {"box": BOX},
                       {"point_coords": POINTS[:1], "point_labels": LABELS[:1], "multimask_output": False}):
            _assert_same_prediction(ours.predict(**kwargs), reference.predict(**kwargs))


def test_decoder_predict_equals_upstream_sam1(cache32, synth_root):
    dec = samcache.Decoder(cache32, device="cpu")
    val = dec.cache.split("val")
    image_id = val.image_ids[1]
    reference = _upstream_sam1(synth_root, 1)
    _assert_same_prediction(dec.predict(val, image_id, points=POINTS, labels=LABELS),
                            reference.predict(POINTS, LABELS))
    _assert_same_prediction(dec.predict(val, image_id, box=BOX, multimask=False),
                            reference.predict(box=BOX, multimask_output=False))
    first = reference.predict(POINTS[:1], LABELS[:1], multimask_output=False)
    _assert_same_prediction(dec.predict(val, image_id, points=POINTS, labels=LABELS, mask_input=first[2]),
                            reference.predict(POINTS, LABELS, mask_input=first[2]))
    # batched: two images' prompts in one call equal one-by-one upstream
    batch = dec.predict_batch("val", [samcache.PromptRequest(val.image_ids[r], POINTS, LABELS) for r in (0, 1)])
    for r, result in zip((0, 1), batch):
        _assert_same_prediction(result, _upstream_sam1(synth_root, r).predict(POINTS, LABELS))


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_cache_predictor_and_decoder_equal_set_image_sam2(sam2_cache, sam2_checkpoint, synth_root):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from samcache.features.sam2.build import build_sam2

    cache = samcache.open_cache(sam2_cache)
    val = cache.split("val")
    image_id = val.image_ids[0]
    reference = SAM2ImagePredictor(build_sam2(SAM2_MODEL, sam2_checkpoint)[0])
    reference.set_image(read_image(list_images(synth_root, "val")[0].image_path))
    ours = samcache.predictor(cache, "val", image_id, sam2_checkpoint, device="cpu")
    dec = samcache.Decoder(cache, sam2_checkpoint, device="cpu")
    for kwargs, mine in (({"point_coords": POINTS, "point_labels": LABELS}, {"points": POINTS, "labels": LABELS}),
                         ({"box": BOX, "multimask_output": False}, {"box": BOX, "multimask": False})):
        theirs = reference.predict(**kwargs)
        _assert_same_prediction(ours.predict(**kwargs), theirs)
        _assert_same_prediction(dec.predict(val, image_id, **mine), theirs)


def test_weights_that_did_not_make_the_cache_are_refused(cache32, sam2_cache, sam2_checkpoint, tmp_path):
    import torch

    other = tmp_path / "other.pt"
    state = torch.load(sam2_checkpoint, weights_only=True)
    state["model"]["sam_mask_decoder.iou_token.weight"] += 1
    torch.save(state, other)
    with pytest.raises(SamcacheError, match="does not match"):
        samcache.predictor(sam2_cache, "val", 0, other)
    with pytest.raises(SamcacheError, match="does not match"):
        samcache.Decoder(sam2_cache, other)
    with pytest.raises(SamcacheError, match="RANDOM weights"):
        samcache.Decoder(cache32, sam2_checkpoint)


def test_fit_head_returns_the_model_and_equals_train_head(cache16, tmp_path):
    import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling as official

    from conftest import invoke

    options = dict(epochs=2, batch_size=2, width=16, num_workers=0, device="cpu", seed=3)
    model, metrics = samcache.fit_head(cache16, "train", "val", **options)
    assert [m["epoch"] for m in metrics] == [1, 2]
    run = tmp_path / "head"
    invoke("train-head", "--cache", cache16, "--epochs", 2, "--batch-size", 2, "--width", 16, "--num-workers", 0,
           "--device", "cpu", "--seed", 3, "--out", run, "--visualize", 0, "--save-predictions", check=True)
    from samcache.pipeline.runs import read_csv

    cli_metrics = read_csv(run / "metrics.csv")
    for ours, theirs in zip(metrics, cli_metrics):
        assert ours["train_loss"] == pytest.approx(float(theirs["train_loss"]), abs=2e-6)  # the CSV keeps 6 digits
        assert ours["val_miou"] == pytest.approx(float(theirs["val_miou"]), abs=2e-6)

    # evaluate_head of the returned model equals cityscapesScripts on the CLI run's predictions of the same model
    ious = samcache.evaluate_head(model, cache16, "val", device="cpu")
    val = samcache.open_cache(cache16).split("val")
    root = val.attrs["data_root"]
    gts, preds = [], []
    for image_id in val.image_ids:
        city = image_id.split("_")[0]
        gts.append(f"{root}/gtFine/val/{city}/{image_id}_gtFine_labelIds.png")
        preds.append(str(run / "predictions" / city / f"{image_id}_labelIds.png"))
    args = official.args
    args.evalInstLevelScore, args.quiet, args.JSONOutput = False, True, False
    args.evalPixelAccuracy = False
    result = official.evaluateImgLists(preds, gts, args)
    from samcache.data.labels import get_class_set

    for name in get_class_set("seed5").eval_names:
        official_iou = result["classScores"][name]
        assert np.isnan(ious[name]) if np.isnan(official_iou) else ious[name] == pytest.approx(official_iou, abs=1e-6)


def test_the_documented_python_api_block_runs_as_written(cache16, tmp_path, monkeypatch):
    from docs_text import code as documented

    code = documented("api")
    for old, new in ((' "cache/cityscapes_vit_h.zarr"', f" {str(cache16)!r}"),
                     (' "checkpoints/sam_vit_h_4b8939.pth"', " None"),  # a random-weight cache has no checkpoint
                     ("epochs=20", "epochs=1")):
        assert old in code, old
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "docs/python-api.md", "exec"), namespace)
    assert namespace["masks"].shape == (3, *namespace["labels"].shape) and namespace["masks"].dtype == bool
    assert set(namespace["ious"]) >= {"road", "car", "mean"} and len(namespace["metrics"]) == 1
    assert not list(tmp_path.iterdir())  # fit_head without out= writes nothing


@pytest.mark.slow
def test_demo_runs_on_a_sam2_family(sam2_checkpoint, tmp_path):
    """The demo's model choice comes from the registry: a SAM 2.1 type runs end to end like SAM 1."""
    from conftest import invoke

    out = tmp_path / "demo"
    proc = invoke("demo", "--out", out, "--model-type", SAM2_MODEL, "--checkpoint", sam2_checkpoint, "--train", 2,
                  "--val", 1, "--size", "256x128", "--prompt", "random", "--max-clicks", 1, "--epochs", 1,
                  "--visualize", 0, "--num-workers", 0, "--quiet", check=True)
    assert f"with the {SAM2_MODEL} model" in proc.stdout
    cache = samcache.open_cache(out / "cache.zarr")
    assert cache.family == "sam2" and cache.fingerprint.model_type == SAM2_MODEL
    assert (out / "report" / "report.md").is_file()
