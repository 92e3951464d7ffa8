"""Model families as data: each descriptor agrees with its upstream package, and a family registered from
outside samcache runs through the stages without any of them naming it."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from samcache.errors import SamcacheError
from samcache.features.families import FAMILIES, backend_for, family_of, model_types
from samcache.features.sam1 import SAM
from samcache.features.sam2 import SAM2


def test_sam1_descriptor_agrees_with_segment_anything():
    from segment_anything.modeling import Sam

    from samcache.features.sam1 import build

    defaults = inspect.signature(Sam.__init__).parameters
    assert SAM.preprocessing["pixel_mean"] == list(defaults["pixel_mean"].default)
    assert SAM.preprocessing["pixel_std"] == list(defaults["pixel_std"].default)
    assert SAM.mask_threshold == Sam.mask_threshold
    sam = build.build_random_sam("tiny")
    assert sam.image_encoder.img_size == SAM.frame[0] == SAM.frame[1]
    assert sam.mask_decoder.output_upscaling(torch.zeros(1, 256, 64, 64)).shape[-1] == SAM.low_res


def test_sam1_variant_table_is_segment_anythings(monkeypatch):
    """The table's official three are what segment_anything's own builders pass to ``_build_sam``."""
    import importlib

    from samcache.features.sam1 import VARIANTS

    upstream = importlib.import_module("segment_anything.build_sam")  # the module (the package exports a function)

    seen = {}
    monkeypatch.setattr(upstream, "_build_sam", lambda **kwargs: seen.update(kwargs))
    for model_type in ("vit_h", "vit_l", "vit_b"):
        upstream.sam_model_registry[model_type]()
        v = VARIANTS[model_type]
        assert (seen["encoder_embed_dim"], seen["encoder_depth"], seen["encoder_num_heads"],
                tuple(seen["encoder_global_attn_indexes"])) == (v.embed_dim, v.depth, v.num_heads,
                                                                v.global_attn_indexes), model_type


def test_a_family_without_text_prompts_says_so_in_one_line():
    backend = backend_for("tiny")
    assert not backend.text_prompts
    with pytest.raises(SamcacheError, match=r"SAM 1 \(sam\) does not answer text prompts"):
        backend.decode_text(None, {}, torch.zeros(1, dtype=torch.long), ["car"])
    with pytest.raises(SamcacheError, match="does not answer text prompts"):
        backend.upsample_text_masks(torch.zeros(1, 8, 8), (4, 4))


def test_sam2_descriptor_agrees_with_sam2():
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    from sam2.utils.transforms import SAM2Transforms

    transforms = SAM2Transforms(resolution=SAM2.frame[0], mask_threshold=0.0)
    normalize = transforms.transforms[-1]
    assert list(normalize.mean) == SAM2.preprocessing["pixel_mean"]
    assert list(normalize.std) == SAM2.preprocessing["pixel_std"]
    assert inspect.signature(SAM2ImagePredictor.__init__).parameters["mask_threshold"].default == SAM2.mask_threshold


def test_registry_lookups():
    assert model_types()[: len(SAM.model_types)] == SAM.model_types
    assert family_of("sam2.1_hiera_l") is SAM2 and backend_for("vit_b").info is SAM
    assert backend_for("sam") is backend_for("tiny")  # one instance per family
    assert all(name == f.name for name, f in FAMILIES.items())
    with pytest.raises(SamcacheError, match="unknown model type"):
        family_of("vit_x")


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_a_family_registered_from_outside_runs_through_every_stage(synth_root, tmp_path):
    """Extract, zero-shot (points and text prompts), clicks, train-head and the notebook API on a family whose
    arrays no stage knows."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from toy_family import register_toy
register_toy()  # before the stages are imported: their model-type choices come from the registry
import samcache
from samcache.pipeline.configs import ClicksConfig, ExtractConfig, ZeroShotConfig
from samcache.pipeline.extract import extract
from samcache.pipeline.zero_shot import run_zero_shot
from samcache.pipeline.clicks import run_clicks
cache = {str(tmp_path / "toy.zarr")!r}
for split in ("train", "val"):
    extract(ExtractConfig(data={str(synth_root)!r}, cache=cache, split=split, model_type="toy_tiny",
                          batch_size=2, num_workers=0, device="cpu", limit=2), progress=False)
opened = samcache.open_cache(cache)
assert opened.family == "toy" and list(opened.feature_shapes) == ["toy_map"]
zs = run_zero_shot(ZeroShotConfig(cache=cache, split="val", prompt="center", out={str(tmp_path / "zs")!r},
                                  num_workers=0, device="cpu", visualize=0), progress=False)
text = run_zero_shot(ZeroShotConfig(cache=cache, split="val", prompt="text", out={str(tmp_path / "text")!r},
                                    num_workers=0, device="cpu", visualize=1, save_instances=True), progress=False)
assert text["strategy"] == "text" and text["prompts"] > 0 and text["instances_listed"] > 0
cl = run_clicks(ClicksConfig(cache=cache, split="val", max_clicks=2, out={str(tmp_path / "cl")!r}, num_workers=0,
                             device="cpu", visualize=0), progress=False)
model, metrics = samcache.fit_head(cache, epochs=1, batch_size=2, width=8, num_workers=0, device="cpu")
val = opened.split("val")
masks, scores, _ = samcache.Decoder(opened, device="cpu").predict(val, 0, points=[[10, 10]], labels=[1])
assert masks.shape[0] == 3 and zs["random_weights"] and cl["objects"] > 0 and len(metrics) == 1
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
