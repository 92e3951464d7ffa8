"""SAM 2.1 registry, encode and decode against upstream's SAM2ImagePredictor.

No real checkpoint can be downloaded here: sam2.1_hiera_t with random weights (seed 0) is saved
in the official format ({"model": state_dict}) and serves as the checkpoint.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from hydra import compose
from sam2.build_sam import HF_MODEL_ID_TO_FILENAMES
from sam2.build_sam import build_sam2 as upstream_build_sam2
from sam2.modeling.backbones.hieradet import Hiera
from sam2.sam2_image_predictor import SAM2ImagePredictor
from sam2.utils.transforms import SAM2Transforms

from samcache.errors import SamcacheError
from samcache.features.backend import Prompts
from samcache.features.sam2 import SAM2, VARIANTS, identify
from samcache.features.sam2.backend import encode, normalize_images, postprocess, prepare_image, to_input_frame
from samcache.features.sam2.build import build_sam2, build_sam2_prompt_decoder
from samcache.features.tracker_heads import decode
from samcache.features.weights import file_sha256

TYPE = "sam2.1_hiera_t"
HW = (512, 1024)  # H, W: a 1024x512 image


@pytest.fixture(scope="module")
def sam():
    model, wid = build_sam2(TYPE, seed=0, allow_random=True)
    assert wid.random and wid.random_seed == 0
    return model


@pytest.fixture(scope="module")
def checkpoint(sam, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": sam.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def images():
    """Two random 1024x512 images with some structure (blocks) under the noise."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        blocks = rng.integers(0, 256, (HW[0] // 64, HW[1] // 64, 3)).repeat(64, 0).repeat(64, 1)
        out.append(np.clip(blocks + rng.normal(0, 20, blocks.shape), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def predictors(sam, images):
    out = []
    for image in images:
        predictor = SAM2ImagePredictor(sam)
        predictor.set_image(image)
        out.append(predictor)
    return out


@pytest.fixture(scope="module")
def features(predictors):
    """The predictors' own features of both images, stacked (M=2) in the predictor's memory layout.

    Upstream's image_embed and high_res_feats_1 are channels_last views of Hiera's (B,H,W,C)
    output; kept so, a one-prompt decode does the predictor's exact arithmetic.
    """
    levels = [(p._features["image_embed"], *p._features["high_res_feats"]) for p in predictors]
    out = {}
    for i, name in enumerate(SAM2.features):
        ref = levels[0][i]
        channels_last = ref.is_contiguous(memory_format=torch.channels_last) and not ref.is_contiguous()
        out[name] = torch.cat([lv[i] for lv in levels])
        if channels_last:
            out[name] = out[name].contiguous(memory_format=torch.channels_last)
    return out


@pytest.fixture(scope="module")
def cached_features(features):
    """The same values as read back from a float32 cache: plain contiguous arrays."""
    return {name: torch.from_numpy(np.ascontiguousarray(v.numpy())) for name, v in features.items()}


def one_line_error(excinfo, *needles: str) -> None:
    msg = excinfo.value.worded()  # the CLI's line
    assert "\n" not in msg, msg
    for needle in needles:
        assert needle in msg, msg


# ---------------------------------------------------------------- registry and checkpoints

def test_registry_matches_upstream_configs_and_file_names():
    official = dict(HF_MODEL_ID_TO_FILENAMES.values())
    default_stages = inspect.signature(Hiera.__init__).parameters["stages"].default  # b+ relies on it
    for name, spec in VARIANTS.items():
        assert official[spec.config] == spec.checkpoint
        trunk = compose(config_name=spec.config).model.image_encoder.trunk
        stages = trunk.get("stages", default_stages)
        assert (trunk.embed_dim, sum(stages)) == (spec.trunk_width, spec.trunk_depth), name


def test_random_init_is_upstreams_deterministic_and_leaves_the_global_rng(sam):
    before = torch.random.get_rng_state()
    again, _ = build_sam2(TYPE, seed=0, allow_random=True)
    other, _ = build_sam2(TYPE, seed=1, allow_random=True)
    assert torch.equal(before, torch.random.get_rng_state())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        upstream = upstream_build_sam2(VARIANTS[TYPE].config, None, device="cpu")
    ref, up, a, b = sam.state_dict(), upstream.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(ref[k], up[k]) and torch.equal(ref[k], a[k]) for k in ref)
    assert not torch.equal(ref["sam_mask_decoder.iou_token.weight"], b["sam_mask_decoder.iou_token.weight"])
    assert not sam.training and sam.sam_mask_decoder.dynamic_multimask_via_stability


def test_official_format_checkpoint_loads_bitwise_and_is_recognised(sam, checkpoint):
    assert identify(torch.load(checkpoint, weights_only=True)) == TYPE
    loaded, wid = build_sam2(TYPE, checkpoint)
    assert wid.checkpoint_sha256 == file_sha256(checkpoint) and not wid.random
    ref = sam.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.state_dict().items())
    assert not loaded.training


def test_checkpoint_errors_are_one_line_naming_the_file(sam, tmp_path):
    full = sam.state_dict()
    # what type recognition reads: the patch embedding and one (small) tensor per trunk block
    trunk = {k: v for k, v in full.items()
             if k.endswith("trunk.patch_embed.proj.weight") or re.search(r"trunk\.blocks\.\d+\.norm1\.weight$", k)}
    no_obj = full["no_obj_embed_spatial"]

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")

    def save(name, obj):
        torch.save(obj, tmp_path / name)
        return tmp_path / name

    # sam2.1_hiera_s: the tiny trunk with 16 blocks instead of 12 (extra keys, shapes unchecked here)
    small = dict(trunk, no_obj_embed_spatial=no_obj,
                 **{k.replace("blocks.1.", f"blocks.{n}."): v for k, v in trunk.items() if "blocks.1." in k
                    for n in range(12, 16)})
    # a SAM 1 vit_b state dict, as far as type recognition looks (encoder width and depth)
    sam1 = {f"image_encoder.blocks.{n}.norm1.weight": torch.zeros(1) for n in range(12)}
    sam1["image_encoder.patch_embed.proj.weight"] = torch.zeros(768, 1, 1, 1)
    cases = [
        (tmp_path / "absent.pt", ("checkpoint not found", "absent.pt")),
        (tmp_path / "junk.pt", ("junk.pt is not a PyTorch checkpoint",)),
        (save("sam1.pth", sam1), ("sam1.pth is a SAM 1 checkpoint (vit_b), not SAM 2.1; pass --model-type vit_b",)),
        (save("decoder.pt", {"model": {k: v for k, v in full.items() if k.startswith("sam_mask_decoder.")}}),
         ("decoder.pt is not a SAM 2.1 checkpoint",)),
        (save("small.pt", {"model": small}), ("small.pt is a SAM 2.1 checkpoint (sam2.1_hiera_s), not sam2.1_hiera_t",)),
        (save("sam2.0.pt", {"model": trunk}), ("sam2.0.pt looks like a SAM 2.0 checkpoint",)),
        (save("trunk.pt", {"model": dict(trunk, no_obj_embed_spatial=no_obj)}),
         ("trunk.pt does not match sam2.1_hiera_t", "missing keys")),
        (save("shape.pt", {"model": {**trunk, "no_obj_embed_spatial": no_obj,
                                     "sam_mask_decoder.iou_token.weight": torch.zeros(1, 7)}}),
         ("shape.pt does not match sam2.1_hiera_t", "size mismatch for sam_mask_decoder.iou_token.weight")),
    ]
    for path, needles in cases:
        for build in (build_sam2, build_sam2_prompt_decoder):
            with pytest.raises(SamcacheError) as excinfo:
                build(TYPE, path)
            one_line_error(excinfo, *needles)
    with pytest.raises(SamcacheError) as excinfo:
        build_sam2(TYPE)
    one_line_error(excinfo, "needs --checkpoint", "sam2.1_hiera_tiny.pt")
    with pytest.raises(SamcacheError) as excinfo:
        build_sam2_prompt_decoder("sam2.1_hiera_xl", allow_random=True)
    one_line_error(excinfo, "unknown SAM 2 model type", "sam2.1_hiera_b+")


# ---------------------------------------------------------------- preprocessing and encode

def test_normalize_images_is_sam2transforms_bitwise(images):
    transforms = SAM2Transforms(resolution=1024, mask_threshold=0.0)
    batch = torch.stack([prepare_image(im) for im in images])
    assert batch.dtype == torch.uint8 and batch.shape == (2, 3, *HW)
    ours = normalize_images(batch)
    assert ours.dtype == torch.float32 and ours.shape == (2, 3, 1024, 1024)
    for i, image in enumerate(images):
        assert torch.equal(ours[i], transforms(image))


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_encode_of_a_batch_equals_set_image_features(sam, images, features):
    ours = encode(sam, torch.stack([prepare_image(im) for im in images]))
    assert set(ours) == set(SAM2.features)
    for name, shape in SAM2.features.items():
        assert ours[name].dtype == torch.float32 and ours[name].shape == (2, *shape)
        ref = features[name]
        rel = ((ours[name] - ref).abs().max() / ref.abs().max()).item()
        assert rel <= 1e-5, (name, rel)


# ---------------------------------------------------------------- decode

def assert_same_as_predict(low_res: torch.Tensor, scores: torch.Tensor, ref_logits: torch.Tensor,
                           ref_scores: torch.Tensor, exact_masks: bool = True) -> None:
    """Masks equal to predict's (its logits > 0), logits and IoU scores within 1e-5.

    ``exact_masks=False`` where float32 rounding may differ (~3e-7: batched GEMMs, another memory
    layout): then masks must be equal wherever rounding cannot flip a pixel (|logit| > 1e-5).
    """
    ours = postprocess(low_res, HW)[0]
    assert ours.shape == ref_logits.shape
    assert (ours - ref_logits).abs().max().item() <= 1e-5 * max(1.0, ref_logits.abs().max().item())
    assert (scores - ref_scores).abs().max().item() <= 1e-5
    decided = slice(None) if exact_masks else ref_logits.abs() > 1e-5
    assert torch.equal((ours > 0)[decided], (ref_logits > 0)[decided])
    assert 0 < (ref_logits > 0).float().mean() < 1  # a real mask, not all or nothing


def predict(predictor, prompt: dict, multimask: bool):
    """Upstream's predict; with return_logits its masks are these logits > mask_threshold (0)."""
    logits, scores, low_res = predictor.predict(prompt.get("points"), prompt.get("labels"), prompt.get("box"),
                                                prompt.get("mask_input"), multimask, return_logits=True)
    return torch.from_numpy(logits), torch.from_numpy(scores), low_res


def prompt_tensors(prompts: list[dict], original_size=HW):
    """Original-pixel prompts -> decode's batched input-frame tensors."""
    coords = labels = boxes = masks = None
    if "points" in prompts[0]:
        coords = torch.stack([torch.as_tensor(to_input_frame(p["points"], original_size)) for p in prompts])
        labels = torch.stack([torch.as_tensor(p["labels"]) for p in prompts])
    if "box" in prompts[0]:
        boxes = torch.stack([torch.as_tensor(to_input_frame(p["box"].reshape(2, 2), original_size)).reshape(4)
                             for p in prompts])
    if "mask_input" in prompts[0]:
        masks = torch.stack([torch.as_tensor(p["mask_input"]) for p in prompts])
    return Prompts(coords, labels, boxes, masks)


CLICKS = {"points": np.array([[300.0, 200.0], [700.0, 400.0]]), "labels": np.array([1, 0])}
BOX = {"box": np.array([150.0, 100.0, 620.0, 460.0])}
CASES = {
    "one click": ({"points": np.array([[512.0, 256.0]]), "labels": np.array([1])}, True),
    "pos+neg points, multimask": (CLICKS, True),
    "pos+neg points, single mask": (CLICKS, False),
    "box": (BOX, False),
    "box, multimask": (BOX, True),
    "box+points": (dict(BOX, points=np.array([[400.0, 300.0], [200.0, 120.0]]), labels=np.array([1, 0])), False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_decode_equals_predict(sam, predictors, features, case):
    prompt, multimask = CASES[case]
    for i, predictor in enumerate(predictors):
        ref_logits, ref_scores, _ = predict(predictor, prompt, multimask)
        low_res, scores = decode(sam, features, torch.tensor([i]), prompt_tensors([prompt]), multimask)
        assert low_res.shape == (1, 3 if multimask else 1, 256, 256) and scores.shape == low_res.shape[:2]
        assert_same_as_predict(low_res, scores[0], ref_logits, ref_scores)


def test_decode_with_previous_low_res_logits_as_mask_input(sam, predictors, features):
    _, first_scores, first_low_res = predict(predictors[1], CLICKS, True)
    best = first_low_res[int(first_scores.argmax())][None]  # (1,256,256), clamped to +-32 by upstream
    prompt = dict(CLICKS, mask_input=best)
    for multimask in (False, True):
        ref_logits, ref_scores, _ = predict(predictors[1], prompt, multimask)
        low_res, scores = decode(sam, features, torch.tensor([1]), prompt_tensors([prompt]), multimask)
        assert_same_as_predict(low_res, scores[0], ref_logits, ref_scores)


def test_prompts_of_two_images_share_one_call(sam, predictors, cached_features):
    prompts = [dict(BOX, points=np.array([[400.0, 300.0]]), labels=np.array([0])),
               dict(BOX, points=np.array([[500.0, 200.0]]), labels=np.array([1]))]
    for multimask in (True, False):
        low_res, scores = decode(sam, cached_features, torch.tensor([1, 0]), prompt_tensors(prompts), multimask)
        for b, image in enumerate((1, 0)):
            ref_logits, ref_scores, _ = predict(predictors[image], prompts[b], multimask)
            assert_same_as_predict(low_res[b: b + 1], scores[b], ref_logits, ref_scores, exact_masks=False)


def test_prompt_decoder_from_checkpoint_decodes_as_the_full_model(sam, checkpoint, features):
    decoder, wid = build_sam2_prompt_decoder(TYPE, checkpoint)
    assert wid.checkpoint_sha256 == file_sha256(checkpoint)
    assert not hasattr(decoder, "image_encoder") and not decoder.training
    assert sum(p.numel() for p in decoder.parameters()) < 5_000_000
    ref = sam.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in decoder.state_dict().items())
    for attr in ("dynamic_multimask_via_stability", "dynamic_multimask_stability_delta",
                 "dynamic_multimask_stability_thresh", "pred_obj_scores", "use_high_res_features"):
        assert getattr(decoder.sam_mask_decoder, attr) == getattr(sam.sam_mask_decoder, attr), attr
    random_decoder, rwid = build_sam2_prompt_decoder(TYPE, seed=0, allow_random=True)
    assert rwid.random and all(torch.equal(v, ref[k]) for k, v in random_decoder.state_dict().items())

    prompt = dict(BOX, points=np.array([[400.0, 300.0]]), labels=np.array([0]))
    args = prompt_tensors([prompt, prompt])
    for multimask in (True, False):
        ours = decode(decoder, features, torch.tensor([0, 1]), args, multimask)
        full = decode(sam, features, torch.tensor([0, 1]), args, multimask)
        assert all(torch.equal(a, b) for a, b in zip(ours, full))


def test_coordinate_transform_and_postprocess_are_upstreams():
    transforms = SAM2Transforms(resolution=1024, mask_threshold=0.0)
    coords = np.array([[0.0, 0.0], [1023.5, 511.0], [333.3, 77.7]])
    ref = transforms.transform_coords(torch.as_tensor(coords, dtype=torch.float), normalize=True, orig_hw=HW)
    assert torch.equal(torch.from_numpy(to_input_frame(coords, HW)), ref)
    assert torch.equal(to_input_frame(torch.as_tensor(coords, dtype=torch.float), HW), ref)
    low_res = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    assert torch.equal(postprocess(low_res, (375, 500)), transforms.postprocess_masks(low_res, (375, 500)))
