"""Model registry and checkpoint loading, on random-init weights saved in the official file format."""

import pytest
import torch

from samcache.errors import SamcacheError
from samcache.features.sam1 import identify
from samcache.features.sam1.build import build_prompt_decoder, build_random_sam, build_sam
from samcache.features.weights import file_sha256


def test_tiny_is_deterministic_and_labelled_random():
    a, wa = build_sam("tiny", seed=1)
    b, _ = build_sam("tiny", seed=1)
    c, _ = build_sam("tiny", seed=2)
    assert wa.random and "RANDOM" in wa.describe()
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_tiny_checkpoint_round_trip(tmp_path):
    sam = build_random_sam("tiny", seed=5)
    path = tmp_path / "tiny.pth"
    torch.save(sam.state_dict(), path)
    loaded, wid = build_sam("tiny", path, attention="upstream")  # the same modules: bitwise the same output
    assert wid.checkpoint_sha256 == file_sha256(path) and not wid.random
    x = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        assert torch.equal(loaded.image_encoder(x), sam.image_encoder(x))
    pe, md, wid2 = build_prompt_decoder("tiny", path)
    assert wid2 == wid
    assert all(torch.equal(v, sam.mask_decoder.state_dict()[k]) for k, v in md.state_dict().items())


def test_official_format_vit_b_loads_and_is_identified(vit_b_checkpoint):
    path, ref = vit_b_checkpoint
    state = torch.load(path, weights_only=True)
    assert identify(state) == "vit_b"
    sam, wid = build_sam("vit_b", path)
    assert wid.checkpoint_sha256 == file_sha256(path)
    assert torch.equal(sam.image_encoder.patch_embed.proj.weight, ref.image_encoder.patch_embed.proj.weight)
    pe, md, _ = build_prompt_decoder("vit_b", path)  # decoder only: no image encoder is built
    assert torch.equal(md.iou_token.weight, ref.mask_decoder.iou_token.weight)


def test_wrong_model_type_names_the_file_and_the_type(vit_b_checkpoint):
    path, _ = vit_b_checkpoint
    with pytest.raises(SamcacheError, match=r"sam_vit_b_random\.pth is a SAM 1 checkpoint \(vit_b\), not vit_h") as e:
        build_sam("vit_h", path)
    assert e.value.worded().endswith("not vit_h; pass --model-type vit_b")  # the CLI's line
    with pytest.raises(SamcacheError, match=r"is a SAM 1 checkpoint \(vit_b\), not vit_l; pass model_type vit_b"):
        build_prompt_decoder("vit_l", path)


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(SamcacheError, match="checkpoint not found: .*nope.pth"):
        build_sam("vit_h", tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"definitely not a zip or pickle" * 10)
    with pytest.raises(SamcacheError, match="junk.pth is not a PyTorch checkpoint"):
        build_sam("vit_h", junk)
    listy = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listy)
    with pytest.raises(SamcacheError, match="list.pth is not a SAM 1 checkpoint"):
        build_sam("vit_b", listy)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(SamcacheError, match=r"other.pth is not a SAM 1 checkpoint .*\(expected a segment-anything"):
        build_sam("vit_b", other)
    sam2_style = tmp_path / "sam2.1_style.pt"
    torch.save({"model": {"image_encoder.trunk.x": torch.zeros(1)}}, sam2_style)
    with pytest.raises(SamcacheError, match="sam2.1_style.pt is not a SAM 1 checkpoint"):
        build_sam("vit_b", sam2_style)


def test_vit_without_checkpoint_is_refused():
    for build in (build_sam, build_prompt_decoder):
        with pytest.raises(SamcacheError, match=r"vit_h needs checkpoint \(e.g. checkpoints/sam_vit_h_4b8939.pth\)") as e:
            build("vit_h")
        assert e.value.worded() == "vit_h needs --checkpoint (e.g. checkpoints/sam_vit_h_4b8939.pth)"  # the CLI's
