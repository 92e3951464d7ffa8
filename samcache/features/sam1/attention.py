"""Faster image-encoder plumbing that keeps upstream's math: SDPA attention and meta-device building.

``SDPAAttention`` is segment-anything's ``Attention`` (same parameters, same state dict) with
``q @ k^T``, softmax and ``@ v`` done by ``F.scaled_dot_product_attention``. The decomposed
relative-position terms become an additive float bias, so the result equals upstream's up to
float rounding, and SDPA runs a fused kernel where the device has one instead of separate
matmul, softmax and matmul passes over the (heads, HW, HW) attention matrix.

``build_on_meta`` constructs a model without allocating or random-initialising its weights
(ViT-H: 632M parameters) and then adopts the checkpoint's tensors as the parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from segment_anything.modeling.image_encoder import Attention, get_rel_pos
from torch import nn
from torch.nn import functional as F

from samcache.choices import ATTENTION_KINDS
from samcache.errors import SamcacheError
from samcache.features.sam1.preprocess import PIXEL_MEAN, PIXEL_STD


def rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                 hw: tuple[int, int]) -> torch.Tensor:
    """upstream's ``add_decomposed_rel_pos`` terms as a (B, heads, HW, HW) bias in q's dtype.

    ``q`` is (B, heads, H*W, head_dim), unscaled, as upstream uses it for the relative terms.
    """
    batch, heads, _, head_dim = q.shape
    h, w = hw
    rel_h_table = get_rel_pos(h, h, rel_pos_h)  # (h, h, head_dim): query row x key row
    rel_w_table = get_rel_pos(w, w, rel_pos_w)  # (w, w, head_dim)
    q_grid = q.reshape(batch, heads, h, w, head_dim)
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", q_grid, rel_h_table)  # (B, heads, h, w, key row)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", q_grid, rel_w_table)  # (B, heads, h, w, key col)
    bias = rel_h[..., :, None] + rel_w[..., None, :]  # (B, heads, h, w, key row, key col)
    return bias.reshape(batch, heads, h * w, h * w).to(q.dtype)


class SDPAAttention(Attention):
    """Upstream's image-encoder attention computed with ``F.scaled_dot_product_attention``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, h, w, _ = x.shape
        # (3, B, heads, H*W, head_dim), the layout upstream reshapes to (B*heads, H*W, head_dim)
        qkv = self.qkv(x).reshape(batch, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w)) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.transpose(1, 2).reshape(batch, h, w, -1)  # heads back next to head_dim, as upstream
        return self.proj(out)


_CLASSES = {"sdpa": SDPAAttention, "upstream": Attention}


def set_attention(image_encoder: nn.Module, kind: str) -> nn.Module:
    """Switch every image-encoder attention in ``image_encoder`` (or a whole Sam) to ``kind``, in place.

    Swapping the class is enough: both classes have the same parameters and state dict keys.
    The mask decoder's attention is a different upstream class and is left alone.
    """
    if kind not in _CLASSES:
        raise SamcacheError(f"unknown attention {kind!r}; choose one of {', '.join(ATTENTION_KINDS)}")
    for module in image_encoder.modules():
        if isinstance(module, Attention):
            module.__class__ = _CLASSES[kind]
    return image_encoder


def sam_buffers() -> dict[str, torch.Tensor]:
    """Values of ``Sam``'s non-persistent buffers (absent from checkpoints), for ``build_on_meta``."""
    return {"pixel_mean": torch.tensor(PIXEL_MEAN).view(-1, 1, 1),
            "pixel_std": torch.tensor(PIXEL_STD).view(-1, 1, 1)}


def build_on_meta(construct: Callable[[], nn.Module], state_dict: Mapping[str, torch.Tensor],
                  buffers: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """``construct()`` on the meta device, then the checkpoint's tensors become its parameters.

    Skips allocating and random-initialising weights that the checkpoint overwrites anyway.
    ``buffers`` gives the values of non-persistent buffers (not in any state dict), by dotted name;
    for SAM pass ``sam_buffers()``. Key or shape mismatches raise ``load_state_dict``'s
    RuntimeError (strict); any tensor still on the meta device afterwards raises SamcacheError.
    The parameters share memory with ``state_dict`` (``assign=True``): an mmap-loaded checkpoint
    is read on first use.
    """
    with torch.device("meta"):
        module = construct()
    persistent = set(module.state_dict(keep_vars=True))
    non_persistent = {n for n, _ in module.named_buffers() if n not in persistent}
    for name, value in (buffers or {}).items():
        if name not in non_persistent:
            raise SamcacheError(f"{type(module).__name__} has no non-persistent buffer {name!r}")
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        current = owner._buffers[leaf]
        if tuple(current.shape) != tuple(value.shape):
            raise SamcacheError(f"buffer {name}: shape {tuple(value.shape)} given, "
                                f"{tuple(current.shape)} expected")
        owner._buffers[leaf] = value.detach().to(dtype=current.dtype, copy=True)
    module.load_state_dict(state_dict, strict=True, assign=True)
    left = meta_tensors(module)
    if left:
        raise SamcacheError(f"still on the meta device after loading (pass their values as buffers): "
                            f"{', '.join(left)}")
    return module


def meta_tensors(module: nn.Module) -> list[str]:
    """Names of parameters, buffers and plain tensor attributes of ``module`` on the meta device."""
    names = [n for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    for prefix, sub in module.named_modules():
        for attr, value in vars(sub).items():
            if isinstance(value, torch.Tensor) and value.is_meta:
                names.append(f"{prefix}.{attr}" if prefix else attr)
    return names
