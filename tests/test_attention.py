"""SDPA attention and meta-device building, against segment-anything's own code as the reference.

Upstream zero-initialises the relative-position tables, which would make a wrong bias invisible;
every model here gets random tables first (``randomize_rel_pos``).
"""

import pytest
import torch
from segment_anything.modeling.image_encoder import Attention, Block
from torch import nn

from samcache.errors import SamcacheError
from samcache.features.sam1.attention import (ATTENTION_KINDS, SDPAAttention, build_on_meta, meta_tensors,
                                         sam_buffers, set_attention)
from samcache.features.sam1.build import _construct, build_random_sam, load_state_dict

FP32_RTOL = 1e-5  # measured: ~4e-7 (tiny) and ~8e-7 (vit_b) on a full encoder forward


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| relative to the reference's largest magnitude."""
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def randomize_rel_pos(module: nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for attn in (m for m in module.modules() if isinstance(m, Attention) and m.use_rel_pos):
            attn.rel_pos_h.copy_(torch.randn(attn.rel_pos_h.shape, generator=gen) * 0.5)
            attn.rel_pos_w.copy_(torch.randn(attn.rel_pos_w.shape, generator=gen) * 0.5)


def encoder_image(seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(seed))


@torch.inference_mode()
def forward(module: nn.Module, kind: str, x: torch.Tensor, bf16: bool = False) -> torch.Tensor:
    set_attention(module, kind)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return module(x)


def odd_block(window_size: int, use_rel_pos: bool, input_size: tuple[int, int]) -> Block:
    block = Block(dim=48, num_heads=3, use_rel_pos=use_rel_pos, window_size=window_size, input_size=input_size)
    randomize_rel_pos(block, seed=window_size + 7)
    return block.eval()


# (window_size, use_rel_pos, rel-pos table size). Windowed blocks see 19x23 tokens, padded to 28x28
# (4 windows of 14x14; their tables are always 14x14). Global blocks see 11x13 tokens, with tables made
# for 11x13 or for 16x16 (get_rel_pos interpolates those).
BLOCK_CASES = {
    "windowed-relpos": (14, True, (14, 14)),
    "windowed-norelpos": (14, False, (14, 14)),
    "global-relpos": (0, True, (11, 13)),
    "global-relpos-resized": (0, True, (16, 16)),
    "global-norelpos": (0, False, (11, 13)),
}


@pytest.mark.parametrize("case", BLOCK_CASES)
def test_block_matches_upstream_fp32_and_bf16(case):
    window, rel, table_hw = BLOCK_CASES[case]
    block = odd_block(window, rel, table_hw)
    x = torch.randn(2, 19 if window else 11, 23 if window else 13, 48, generator=torch.Generator().manual_seed(3))
    ref = forward(block, "upstream", x)
    assert rel_diff(forward(block, "sdpa", x), ref) < FP32_RTOL
    up16, sdpa16 = forward(block, "upstream", x, bf16=True), forward(block, "sdpa", x, bf16=True)
    assert forward(block.attn, "sdpa", x[:, :5, :7], bf16=True).dtype == torch.bfloat16
    # bf16 carries 8 bits of mantissa: SDPA must be about as close to fp32 as upstream's own bf16 run
    assert rel_diff(sdpa16, ref) < max(2 * rel_diff(up16, ref), 2e-2)


def test_gradients_match_upstream():
    """rel_pos tables and the rest get upstream's gradients, for anyone fine-tuning through SDPA."""
    block = odd_block(14, True, (14, 14))
    x = torch.randn(2, 19, 23, 48, generator=torch.Generator().manual_seed(4))
    grads = {}
    for kind in ATTENTION_KINDS:
        block.zero_grad()
        set_attention(block, kind)(x).square().sum().backward()
        grads[kind] = {n: p.grad.clone() for n, p in block.named_parameters()}
    for name, ref in grads["upstream"].items():
        assert rel_diff(grads["sdpa"][name], ref) < FP32_RTOL, name


def test_tiny_encoder_matches_upstream_and_round_trips():
    sam = build_random_sam("tiny", seed=0)
    randomize_rel_pos(sam)
    x = encoder_image()
    ref = forward(sam.image_encoder, "upstream", x)
    assert rel_diff(forward(sam.image_encoder, "sdpa", x), ref) < FP32_RTOL
    assert all(type(b.attn) is SDPAAttention for b in sam.image_encoder.blocks)
    sdpa16 = forward(sam.image_encoder, "sdpa", x, bf16=True)
    up16 = forward(sam.image_encoder, "upstream", x, bf16=True)
    assert rel_diff(sdpa16, ref) < max(2 * rel_diff(up16, ref), 3e-2)
    assert torch.equal(forward(sam.image_encoder, "upstream", x), ref)  # back to upstream's exact output


def test_set_attention_leaves_decoder_and_keys_alone():
    sam = build_random_sam("tiny", seed=0)
    keys = list(sam.state_dict())
    decoder_types = [type(m) for m in sam.mask_decoder.modules()]
    assert set_attention(sam, "sdpa") is sam
    assert list(sam.state_dict()) == keys
    assert [type(m) for m in sam.mask_decoder.modules()] == decoder_types
    assert ATTENTION_KINDS == ("sdpa", "upstream")
    with pytest.raises(SamcacheError, match=r"unknown attention 'flash'; choose one of sdpa, upstream"):
        set_attention(sam.image_encoder, "flash")


def saved(model: nn.Module, directory) -> str:
    """The model's state dict saved as the official checkpoints are (torch.save of a dict)."""
    path = directory / "checkpoint.pth"
    torch.save(model.state_dict(), path)
    return path


def normal_and_meta(model_type: str, path) -> tuple[nn.Module, nn.Module]:
    """The same checkpoint built the usual way (construct + load) and with ``build_on_meta``."""
    normal = _construct(model_type)
    normal.load_state_dict(torch.load(path, weights_only=True), strict=True)
    meta = build_on_meta(lambda: _construct(model_type), load_state_dict(path, model_type), buffers=sam_buffers())
    return normal, meta


def assert_bitwise_equal(ours: nn.Module, theirs: nn.Module) -> None:
    assert meta_tensors(ours) == [] and ours.training == theirs.training
    mine = dict(ours.named_parameters()) | dict(ours.named_buffers())  # buffers: pixel_mean/std too
    ref = dict(theirs.named_parameters()) | dict(theirs.named_buffers())
    assert list(mine) == list(ref)
    for name, tensor in mine.items():
        assert tensor.dtype == ref[name].dtype and torch.equal(tensor, ref[name]), name
    assert all(p.requires_grad for p in ours.parameters())


@pytest.fixture(scope="module")
def vit_b(vit_b_checkpoint):
    """The shared random vit_b checkpoint built both ways (the SDPA forward is compared on tiny here,
    and on ViT-B by benchmarks/bench_attention.py, to keep the suite short)."""
    path = vit_b_checkpoint[0]
    return (path, *normal_and_meta("vit_b", path))


def test_build_on_meta_vit_b_is_bitwise_the_normal_build(vit_b):
    _, normal, meta = vit_b
    assert_bitwise_equal(meta, normal)


def test_build_on_meta_tiny_gives_the_same_output(tmp_path):
    """Exact output equality, on tiny: a third ViT-B forward would double this file's run time."""
    seed_model = build_random_sam("tiny", seed=3)
    randomize_rel_pos(seed_model)
    normal, meta = normal_and_meta("tiny", saved(seed_model, tmp_path))
    assert_bitwise_equal(meta, normal)
    x = encoder_image(1)
    assert torch.equal(forward(meta.image_encoder, "upstream", x), forward(normal.image_encoder, "upstream", x))
    assert torch.equal(forward(meta.image_encoder, "sdpa", x), forward(normal.image_encoder, "sdpa", x))


def test_build_on_meta_rejects_key_mismatches(vit_b):
    path = vit_b[0]
    state = load_state_dict(path, "vit_b")
    missing = {k: v for k, v in state.items() if k != "image_encoder.blocks.3.attn.qkv.weight"}
    with pytest.raises(RuntimeError, match=r"Missing key.*blocks\.3\.attn\.qkv\.weight"):
        build_on_meta(lambda: _construct("vit_b"), missing, buffers=sam_buffers())
    with pytest.raises(RuntimeError, match="Unexpected key"):
        build_on_meta(lambda: _construct("vit_b"), state | {"extra.weight": torch.zeros(1)}, buffers=sam_buffers())
    wrong_shape = state | {"image_encoder.pos_embed": torch.zeros(1, 32, 32, 768)}
    with pytest.raises(RuntimeError, match="size mismatch"):
        build_on_meta(lambda: _construct("vit_b"), wrong_shape, buffers=sam_buffers())


class _Scaled(nn.Module):
    """A module whose non-persistent buffer is made on the meta device (torch.ones honours it)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("gain", torch.ones(3) * 2, persistent=False)


def test_build_on_meta_needs_non_persistent_buffer_values():
    state = _Scaled().state_dict()
    with pytest.raises(SamcacheError, match="still on the meta device.*: gain"):
        build_on_meta(_Scaled, state)
    built = build_on_meta(_Scaled, state, buffers={"gain": torch.full((3,), 2.0)})
    assert torch.equal(built.gain, torch.full((3,), 2.0)) and meta_tensors(built) == []
    assert torch.equal(built.lin.weight, state["lin.weight"])
    with pytest.raises(SamcacheError, match="no non-persistent buffer 'lin.weight'"):
        build_on_meta(_Scaled, state, buffers={"lin.weight": torch.zeros(3, 3)})
    with pytest.raises(SamcacheError, match=r"buffer gain: shape \(4,\) given, \(3,\) expected"):
        build_on_meta(_Scaled, state, buffers={"gain": torch.zeros(4)})
