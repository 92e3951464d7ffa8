"""Model registry: segment-anything's vit_h / vit_l / vit_b builders plus a ``tiny`` one.

``tiny`` is a small ViT image encoder in front of segment-anything's own PromptEncoder and
MaskDecoder. It outputs the real 256x64x64 embedding. Its weights are random, deterministic
from a seed, and always labelled as random: it exercises the pipeline, not SAM's accuracy.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from segment_anything import sam_model_registry
from segment_anything.build_sam import _build_sam
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam

from samcache.errors import SamcacheError
from samcache.features.attention import build_on_meta, sam_buffers, set_attention
from samcache.features.families import SAM
from samcache.features.weights import WeightsId, file_sha256, require_checkpoint_file

# image encoder (embed_dim, depth, num_heads, global_attn_indexes); the official three match
# segment_anything.build_sam and serve to recognise a checkpoint's type from its keys.
ENCODER_SPECS = {
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "tiny": (64, 2, 2, (1,)),
}
MODEL_TYPES = SAM.model_types
OFFICIAL_CHECKPOINTS = SAM.example_checkpoints


def build_random_sam(model_type: str, seed: int = 0) -> Sam:
    """A SAM of ``model_type`` with deterministic random-init weights (RNG state is restored)."""
    if model_type not in ENCODER_SPECS:
        raise SamcacheError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _construct(model_type)


def _construct(model_type: str) -> Sam:
    if model_type == "tiny":
        dim, depth, heads, global_idx = ENCODER_SPECS["tiny"]
        return _build_sam(dim, depth, heads, list(global_idx)).eval()  # upstream builder, real decoder
    return sam_model_registry[model_type]().eval()


def identify_model_type(state_dict: dict) -> str | None:
    """Which registered type a state dict belongs to, from its encoder width and depth."""
    patch = state_dict.get("image_encoder.patch_embed.proj.weight")
    if patch is None:
        return None
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))}
    for name, (dim, depth, _, _) in ENCODER_SPECS.items():
        if patch.shape[0] == dim and len(blocks) == depth:
            return name
    return None


SAM3_KEY = "detector.backbone.vision_backbone.trunk.patch_embed.proj.weight"  # in every sam3.pt


SAM3_WIDTHS = {1024: "sam3", 64: "sam3_tiny"}  # the trunk's width (its patch embedding's output channels)


def sam3_type(ckpt) -> str | None:
    """The SAM 3 model type of a checkpoint (flat, or under "model"), or None if it is not SAM 3's; the SAM 1
    and SAM 2.1 loaders name it with this, and ``--model-type auto`` picks it."""
    inner = ckpt.get("model") if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) else ckpt
    if not isinstance(inner, dict) or SAM3_KEY not in inner:
        return None
    return SAM3_WIDTHS.get(int(inner[SAM3_KEY].shape[0]), "sam3")


def read_checkpoint(path: str | Path):
    """torch.load, memory-mapped where the file allows, weights only; one-line errors naming the file."""
    path = Path(path)
    require_checkpoint_file(path)
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy format
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        raise SamcacheError(f"{path} is not a PyTorch checkpoint, or is truncated ({type(exc).__name__})") from None


def load_state_dict(path: str | Path) -> dict:
    """A SAM checkpoint: a state dict of tensors, loaded lazily (mmap)."""
    state = read_checkpoint(path)
    if (found := sam3_type(state)) is not None:
        raise SamcacheError(f"{path} is a SAM 3 checkpoint ({found}), not a SAM 1 one; pass --model-type {found}")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # SAM 2.1's official layout
        raise SamcacheError(f"{path} is a SAM 2.1-style checkpoint (a dict with 'model'), not a SAM 1 one; "
                            f"pass the matching --model-type sam2.1_hiera_*")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SamcacheError(f"{path} does not hold a state dict of tensors")
    return state


def _checked_state_dict(model_type: str, checkpoint: str | Path) -> dict:
    state = load_state_dict(checkpoint)
    found = identify_model_type(state)
    if found is None:
        raise SamcacheError(f"{checkpoint} is not a SAM checkpoint (no image encoder keys of a known type)")
    if found != model_type:
        raise SamcacheError(f"{checkpoint} looks like a {found} checkpoint, not {model_type}")
    return state


def weights_id(model_type: str, checkpoint: str | Path | None, seed: int) -> WeightsId:
    if checkpoint is None:
        return WeightsId(None, seed)
    return WeightsId(file_sha256(checkpoint), None)


def _require_checkpoint(model_type: str, allow_random: bool) -> None:
    """vit_* without a checkpoint would be silently random: only benchmarks ask for that."""
    if model_type != "tiny" and not allow_random:
        expected = OFFICIAL_CHECKPOINTS.get(model_type, "a checkpoint")
        raise SamcacheError(f"{model_type} needs --checkpoint (e.g. checkpoints/{expected})")


def require_weights_file(model_type: str, checkpoint: str | Path | None) -> None:
    """The cheap part of the checks (a checkpoint given where needed, and present), before any lock is taken."""
    if checkpoint is None:
        _require_checkpoint(model_type, allow_random=False)
    else:
        require_checkpoint_file(checkpoint)


def check_weights(model_type: str, checkpoint: str | Path | None = None, seed: int = 0) -> WeightsId:
    """Validate a checkpoint's type and identify the weights without building the model (Dask drivers)."""
    if checkpoint is None:
        _require_checkpoint(model_type, allow_random=False)
        return WeightsId(None, seed)
    _checked_state_dict(model_type, checkpoint)
    return weights_id(model_type, checkpoint, seed)


def build_sam(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
              allow_random: bool = False, attention: str = "sdpa") -> tuple[Sam, WeightsId]:
    """The full SAM. vit_* need a checkpoint unless ``allow_random`` (benchmarks); tiny never has one.

    A checkpoint is loaded into a model built on the meta device (no random init of weights it
    overwrites: ViT-H 3.7 s -> 0.04 s here). ``attention``: "sdpa" (fused kernel, the same math)
    or "upstream" (segment-anything's own, the bit-exact reference).
    """
    if checkpoint is None:
        _require_checkpoint(model_type, allow_random)
        sam, weights = build_random_sam(model_type, seed), WeightsId(None, seed)
    else:
        state = _checked_state_dict(model_type, checkpoint)
        try:
            sam = build_on_meta(lambda: _construct(model_type), state, buffers=sam_buffers())
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SamcacheError(f"{checkpoint} does not match {model_type}: {first}") from None
        weights = weights_id(model_type, checkpoint, seed)
    set_attention(sam.image_encoder, attention)
    return sam.eval(), weights


def build_prompt_decoder(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
                         allow_random: bool = False) -> tuple[PromptEncoder, MaskDecoder, WeightsId]:
    """Only the prompt encoder and mask decoder (~4M parameters); the image encoder is never built."""
    if checkpoint is None:
        if model_type != "tiny" and not allow_random:
            raise SamcacheError(f"{model_type} needs --checkpoint to decode prompts")
        sam = build_random_sam(model_type, seed)  # same RNG order as the encoder that made the cache
        return sam.prompt_encoder, sam.mask_decoder, WeightsId(None, seed)
    state = _checked_state_dict(model_type, checkpoint)
    sam = _decoder_only_sam(seed)
    for name in ("prompt_encoder", "mask_decoder"):
        prefix = name + "."
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            getattr(sam, name).load_state_dict(part, strict=True)
        except RuntimeError as exc:
            raise SamcacheError(f"{checkpoint}: {name} weights do not match: {str(exc).splitlines()[0]}") from None
    return sam.prompt_encoder, sam.mask_decoder, weights_id(model_type, checkpoint, seed)


def _decoder_only_sam(seed: int) -> Sam:
    """Upstream's builder with an empty (depth-0) encoder: the real decoder, no encoder cost."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build_sam(16, 0, 1, []).eval()
