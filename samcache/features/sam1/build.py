"""SAM 1's models from its variant table: segment-anything's vit_h / vit_l / vit_b builders plus a ``tiny`` one.

``tiny`` is a small ViT image encoder in front of segment-anything's own PromptEncoder and
MaskDecoder. It outputs the real 256x64x64 embedding. Its weights are random, deterministic
from a seed, and always labelled as random: it exercises the pipeline, not SAM's accuracy.
"""

from __future__ import annotations

from pathlib import Path

import torch
from segment_anything import sam_model_registry
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam

from samcache.errors import SamcacheError
from samcache.features.checkpoints import load_checkpoint, require_checkpoint, weights_id
from samcache.features.sam1 import SAM, VARIANTS
from samcache.features.sam1.attention import build_on_meta, sam_buffers, set_attention
from samcache.features.weights import WeightsId


def build_random_sam(model_type: str, seed: int = 0) -> Sam:
    """A SAM of ``model_type`` with deterministic random-init weights (RNG state is restored)."""
    if model_type not in VARIANTS:
        raise SamcacheError(f"unknown model type {model_type!r}; choose one of {', '.join(SAM.model_types)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _construct(model_type)


def _construct(model_type: str) -> Sam:
    if model_type in sam_model_registry:
        return sam_model_registry[model_type]().eval()
    v = VARIANTS[model_type]
    return _build_sam(v.embed_dim, v.depth, v.num_heads, list(v.global_attn_indexes)).eval()  # upstream's, real decoder


def load_state_dict(path: str | Path, model_type: str) -> dict:
    """A SAM 1 checkpoint of ``model_type``: a state dict of tensors, loaded lazily (mmap)."""
    state = load_checkpoint(model_type, path)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SamcacheError(f"{path} does not hold a state dict of tensors")
    return state


def check_weights(model_type: str, checkpoint: str | Path | None = None, seed: int = 0) -> WeightsId:
    """Validate a checkpoint's type and identify the weights without building the model (Dask drivers)."""
    require_checkpoint(model_type, checkpoint)
    if checkpoint is not None:
        load_state_dict(checkpoint, model_type)
    return weights_id(checkpoint, seed)


def build_sam(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
              allow_random: bool = False, attention: str = "sdpa") -> tuple[Sam, WeightsId]:
    """The full SAM. vit_* need a checkpoint unless ``allow_random`` (benchmarks); tiny never has one.

    A checkpoint is loaded into a model built on the meta device (no random init of weights it
    overwrites: ViT-H 3.7 s -> 0.04 s here). ``attention``: "sdpa" (fused kernel, the same math)
    or "upstream" (segment-anything's own, the bit-exact reference).
    """
    require_checkpoint(model_type, checkpoint, allow_random)
    if checkpoint is None:
        sam, weights = build_random_sam(model_type, seed), WeightsId(None, seed)
    else:
        state = load_state_dict(checkpoint, model_type)
        try:
            sam = build_on_meta(lambda: _construct(model_type), state, buffers=sam_buffers())
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SamcacheError(f"{checkpoint} does not match {model_type}: {first}") from None
        weights = weights_id(checkpoint, seed)
    set_attention(sam.image_encoder, attention)
    return sam.eval(), weights


def build_prompt_decoder(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
                         allow_random: bool = False) -> tuple[PromptEncoder, MaskDecoder, WeightsId]:
    """Only the prompt encoder and mask decoder (~4M parameters); the image encoder is never built."""
    require_checkpoint(model_type, checkpoint, allow_random)
    if checkpoint is None:
        sam = build_random_sam(model_type, seed)  # same RNG order as the encoder that made the cache
        return sam.prompt_encoder, sam.mask_decoder, WeightsId(None, seed)
    state = load_state_dict(checkpoint, model_type)
    sam = _decoder_only_sam(seed)
    for name in ("prompt_encoder", "mask_decoder"):
        prefix = name + "."
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            getattr(sam, name).load_state_dict(part, strict=True)
        except RuntimeError as exc:
            raise SamcacheError(f"{checkpoint}: {name} weights do not match: {str(exc).splitlines()[0]}") from None
    return sam.prompt_encoder, sam.mask_decoder, weights_id(checkpoint, seed)


def _decoder_only_sam(seed: int) -> Sam:
    """Upstream's builder with an empty (depth-0) encoder: the real decoder, no encoder cost."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build_sam(16, 0, 1, []).eval()
