"""SAM 2.1's models from its variant table: upstream's hydra configs, official checkpoints, random init for tests.

The full model is ``sam2.build_sam.build_sam2`` with its default post-processing (dynamic
multimask fallback), i.e. what ``SAM2ImagePredictor`` users get. A checkpoint's type is
recognised from its Hiera trunk (width, depth), so a wrong model type is one clear line rather
than a key dump. Decoding needs only the prompt encoder and mask decoder (~4M parameters):
``build_sam2_prompt_decoder`` builds them with upstream's own ``SAM2Base._build_sam_heads`` and
never the image encoder (Hiera-L is 220M parameters).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from hydra import compose
from omegaconf import OmegaConf
from sam2.build_sam import build_sam2 as upstream_build_sam2
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam2_base import SAM2Base

from samcache.errors import SamcacheError
from samcache.features.checkpoints import load_checkpoint, require_checkpoint, weights_id
from samcache.features.sam2 import VARIANTS, Sam2Variant
from samcache.features.weights import WeightsId, load_tensors

# what sam2.build_sam.build_sam2(apply_postprocessing=True) adds; the decoder-only build needs it too
POSTPROCESSING_OVERRIDES = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)
DECODER_PREFIXES = ("sam_prompt_encoder.", "sam_mask_decoder.")
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


def _spec(model_type: str) -> Sam2Variant:
    if model_type not in VARIANTS:
        raise SamcacheError(f"unknown SAM 2 model type {model_type!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[model_type]


def _random_sam2(spec: Sam2Variant, seed: int) -> SAM2Base:
    """Upstream's builder, deterministic from ``seed``; the global RNG state is restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return upstream_build_sam2(spec.config, None, device="cpu", mode="eval")


def load_sam2_state_dict(path: str | Path, model_type: str) -> dict[str, torch.Tensor]:
    """The ``"model"`` state dict of an official SAM 2.1 checkpoint of ``model_type``, memory-mapped."""
    state = load_checkpoint(model_type, path)["model"]
    if _SAM21_ONLY_KEY not in state:
        raise SamcacheError(f"{path} looks like a SAM 2.0 checkpoint; {model_type} needs the SAM 2.1 one "
                            f"({_spec(model_type).checkpoint})")
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SamcacheError(f"{path} does not hold a state dict of tensors")
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
    require_checkpoint(model_type, checkpoint, allow_random)
    if checkpoint is None:
        return _random_sam2(spec, seed), WeightsId(None, seed)
    state = load_sam2_state_dict(checkpoint, model_type)
    model = _random_sam2(spec, seed)  # upstream builds, then loads: every tensor is overwritten
    _load_into(model, state, checkpoint, model_type)
    return model.eval(), weights_id(checkpoint, seed)


def build_sam2_prompt_decoder(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
                              allow_random: bool = False) -> tuple[Sam2PromptDecoder, WeightsId]:
    """Prompt encoder + mask decoder only; from a checkpoint the image encoder is never built."""
    spec = _spec(model_type)
    require_checkpoint(model_type, checkpoint, allow_random)
    if checkpoint is None:
        sam = _random_sam2(spec, seed)  # the same RNG order as the encoder that made the cache
        return Sam2PromptDecoder(sam.sam_prompt_encoder, sam.sam_mask_decoder).eval(), WeightsId(None, seed)
    state = load_sam2_state_dict(checkpoint, model_type)
    cfg = compose(config_name=spec.config, overrides=list(POSTPROCESSING_OVERRIDES))
    OmegaConf.resolve(cfg)
    with torch.random.fork_rng(devices=[]):  # the init is overwritten; leave the caller's RNG alone
        heads = _SamHeadsOnly(cfg.model)
    decoder = Sam2PromptDecoder(heads.sam_prompt_encoder, heads.sam_mask_decoder)
    _load_into(decoder, {k: v for k, v in state.items() if k.startswith(DECODER_PREFIXES)}, checkpoint, model_type)
    return decoder.eval(), weights_id(checkpoint, seed)
