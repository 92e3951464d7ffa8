"""SAM 2.1 model registry: upstream's hydra configs, official checkpoints, random init for tests.

The full model is ``sam2.build_sam.build_sam2`` with its default post-processing (dynamic
multimask fallback), i.e. what ``SAM2ImagePredictor`` users get. A checkpoint's type is
recognised from its Hiera trunk (width, depth), so a wrong model type is one clear line rather
than a key dump. Decoding needs only the prompt encoder and mask decoder (~4M parameters):
``build_sam2_prompt_decoder`` builds them with upstream's own ``SAM2Base._build_sam_heads`` and
never the image encoder (Hiera-L is 220M parameters).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import NamedTuple

import torch
from hydra import compose
from omegaconf import OmegaConf
from sam2.build_sam import build_sam2 as upstream_build_sam2
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam2_base import SAM2Base

from samcache.errors import SamcacheError
from samcache.features.models import identify_model_type, read_checkpoint, sam3_type, weights_id
from samcache.features.weights import WeightsId, load_tensors


class Sam2Spec(NamedTuple):
    config: str  # hydra config name in the sam2 package
    checkpoint: str  # official checkpoint file name
    trunk_width: int  # Hiera embed_dim, and ...
    trunk_depth: int  # ... sum(stages): together they recognise a checkpoint's type


SAM2_MODEL_TYPES = {
    "sam2.1_hiera_t": Sam2Spec("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt", 96, 12),
    "sam2.1_hiera_s": Sam2Spec("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt", 96, 16),
    "sam2.1_hiera_b+": Sam2Spec("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt", 112, 24),
    "sam2.1_hiera_l": Sam2Spec("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt", 144, 48),
}
# what sam2.build_sam.build_sam2(apply_postprocessing=True) adds; the decoder-only build needs it too
POSTPROCESSING_OVERRIDES = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
DECODER_PREFIXES = ("sam_prompt_encoder.", "sam_mask_decoder.")
_TRUNK_PATCH = "image_encoder.trunk.patch_embed.proj.weight"
_TRUNK_BLOCK = re.compile(r"image_encoder\.trunk\.blocks\.(\d+)\.")
_SAM21_ONLY_KEY = "no_obj_embed_spatial"  # absent from SAM 2.0 checkpoints, whose trunks are the same


class Sam2PromptDecoder(torch.nn.Module):
    """What ``SAM2ImagePredictor._predict`` uses of the model once features are cached.

    Attribute names are SAM2Base's, so checkpoint keys load unchanged and ``decode`` accepts
    either this or a full SAM2Base.
    """

    def __init__(self, sam_prompt_encoder: PromptEncoder, sam_mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.sam_prompt_encoder = sam_prompt_encoder
        self.sam_mask_decoder = sam_mask_decoder


class _SamHeadsOnly(SAM2Base):
    """SAM2Base without backbone and memory: only ``_build_sam_heads``, on the config's values."""

    _OPTIONS = ("image_size", "backbone_stride", "use_high_res_features_in_sam", "iou_prediction_use_sigmoid",
                "pred_obj_scores", "pred_obj_scores_mlp", "use_multimask_token_for_obj_ptr")

    def __init__(self, model_cfg) -> None:
        torch.nn.Module.__init__(self)  # not SAM2Base.__init__: that builds the image encoder
        defaults = inspect.signature(SAM2Base.__init__).parameters
        for name in self._OPTIONS:
            setattr(self, name, model_cfg.get(name, defaults[name].default))
        extra = model_cfg.get("sam_mask_decoder_extra_args")
        self.sam_mask_decoder_extra_args = None if extra is None else OmegaConf.to_container(extra)
        self.hidden_dim = model_cfg.image_encoder.neck.d_model
        self.use_obj_ptrs_in_encoder = self.proj_tpos_enc_in_obj_ptrs = False  # video-tracking heads
        self._build_sam_heads()


def _spec(model_type: str) -> Sam2Spec:
    if model_type not in SAM2_MODEL_TYPES:
        raise SamcacheError(f"unknown SAM 2 model type {model_type!r}; choose one of {', '.join(SAM2_MODEL_TYPES)}")
    return SAM2_MODEL_TYPES[model_type]


def _require_checkpoint(model_type: str, allow_random: bool) -> None:
    """Without a checkpoint the weights would be silently random: only tests and benchmarks ask for that."""
    if not allow_random:
        raise SamcacheError(f"{model_type} needs --checkpoint (e.g. checkpoints/{_spec(model_type).checkpoint})")


def _random_sam2(spec: Sam2Spec, seed: int) -> SAM2Base:
    """Upstream's builder, deterministic from ``seed``; the global RNG state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return upstream_build_sam2(spec.config, None, device="cpu", mode="eval")


def identify_sam2_type(state_dict: dict) -> str | None:
    """Which registered type a SAM 2 state dict belongs to, from its Hiera trunk width and depth."""
    patch = state_dict.get(_TRUNK_PATCH)
    if patch is None:
        return None
    blocks = {int(m.group(1)) for k in state_dict if (m := _TRUNK_BLOCK.match(k))}
    for name, spec in SAM2_MODEL_TYPES.items():
        if patch.shape[0] == spec.trunk_width and len(blocks) == spec.trunk_depth:
            return name
    return None


def load_sam2_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``"model"`` state dict of an official SAM 2 checkpoint, memory-mapped, errors naming the file."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    if (found := sam3_type(ckpt)) is not None:
        raise SamcacheError(f"{path} is a SAM 3 checkpoint ({found}), not a SAM 2 one; pass --model-type {found}")
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    is_state_dict = isinstance(ckpt, dict) and all(isinstance(k, str) for k in ckpt)
    sam1 = identify_model_type(ckpt) if is_state_dict else None
    hint = f"; it looks like a SAM 1 {sam1} checkpoint" if sam1 else ""
    raise SamcacheError(f"{path} is not a SAM 2 checkpoint (no \"model\" state dict{hint})")


def _checked_state_dict(model_type: str, checkpoint: str | Path) -> dict[str, torch.Tensor]:
    state = load_sam2_state_dict(checkpoint)
    found = identify_sam2_type(state)
    if found is None:
        raise SamcacheError(f"{checkpoint} is not a SAM 2 checkpoint (no Hiera image encoder of a known size)")
    if found != model_type:
        raise SamcacheError(f"{checkpoint} looks like {found}, not {model_type}")
    if _SAM21_ONLY_KEY not in state:
        raise SamcacheError(f"{checkpoint} looks like a SAM 2.0 checkpoint; {model_type} needs the SAM 2.1 one "
                            f"({_spec(model_type).checkpoint})")
    return state


def _load_into(module: torch.nn.Module, state: dict, checkpoint: str | Path, model_type: str) -> None:
    """load_state_dict, strict, with one line naming the file and the first offending keys."""
    missing, unexpected = load_tensors(module, state, checkpoint, model_type)
    if missing or unexpected:
        raise SamcacheError(f"{checkpoint} does not match {model_type}: {len(missing)} missing keys {missing[:2]}, "
                            f"{len(unexpected)} unexpected keys {unexpected[:2]}")


def build_sam2(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
               allow_random: bool = False) -> tuple[SAM2Base, WeightsId]:
    """The full SAM 2.1 model in eval mode; random weights (``seed``) only if ``allow_random``."""
    spec = _spec(model_type)
    if checkpoint is None:
        _require_checkpoint(model_type, allow_random)
        return _random_sam2(spec, seed), WeightsId(None, seed)
    state = _checked_state_dict(model_type, checkpoint)
    model = _random_sam2(spec, seed)  # upstream builds, then loads: every tensor is overwritten
    _load_into(model, state, checkpoint, model_type)
    return model.eval(), weights_id(model_type, checkpoint, seed)


def build_sam2_prompt_decoder(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
                              allow_random: bool = False) -> tuple[Sam2PromptDecoder, WeightsId]:
    """Prompt encoder + mask decoder only; from a checkpoint the image encoder is never built."""
    spec = _spec(model_type)
    if checkpoint is None:
        _require_checkpoint(model_type, allow_random)
        sam = _random_sam2(spec, seed)  # the same RNG order as the encoder that made the cache
        return Sam2PromptDecoder(sam.sam_prompt_encoder, sam.sam_mask_decoder).eval(), WeightsId(None, seed)
    state = _checked_state_dict(model_type, checkpoint)
    cfg = compose(config_name=spec.config, overrides=list(POSTPROCESSING_OVERRIDES))
    OmegaConf.resolve(cfg)
    with torch.random.fork_rng(devices=[]):  # the init is overwritten; leave the caller's RNG alone
        heads = _SamHeadsOnly(cfg.model)
    decoder = Sam2PromptDecoder(heads.sam_prompt_encoder, heads.sam_mask_decoder)
    _load_into(decoder, {k: v for k, v in state.items() if k.startswith(DECODER_PREFIXES)}, checkpoint, model_type)
    return decoder.eval(), weights_id(model_type, checkpoint, seed)
