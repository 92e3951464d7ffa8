"""Build SAM 3's image model: the official one from ``sam3.pt``, or a ``tiny`` random one for tests.

Both come from upstream's own builder, ``sam3.model_builder.build_sam3_image_model`` with the
interactive (SAM 1 task) predictor enabled. ``tiny`` runs that same builder with the module
classes it instantiates given small dimensions (``TINY_OVERRIDES``), so its wiring and state-dict
keys are upstream's; its weights are deterministic from a seed and every tensor is initialised.

``sam3.pt`` holds ``detector.*`` (the image model) and ``tracker.*`` (the SAM 2-style tracker whose
prompt encoder and mask decoder serve points and boxes). Upstream's loader maps ``detector.`` ->
'' and ``tracker.`` -> ``inst_interactive_predictor.model.`` and loads with ``strict=False``; here
the same mapping is loaded strictly: a missing or unexpected key is an error.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

from samcache.errors import SamcacheError
from samcache.features.checkpoints import load_checkpoint, require_checkpoint, weights_id
from samcache.features.sam3 import VARIANTS, compat as sam3_compat, state_dict_of
from samcache.features.weights import WeightsId, load_tensors

D = 32  # tiny model width (upstream: 256) ; the trunk's is TINY_TRUNK_DIM
TINY_TRUNK_DIM = 64
TINY_OVERRIDES: dict[str, dict] = {  # class name in sam3.model_builder -> keyword arguments replaced
    "ViT": dict(embed_dim=TINY_TRUNK_DIM, depth=2, num_heads=2, global_att_blocks=(1,), mlp_ratio=2.0),
    "Sam3DualViTDetNeck": dict(d_model=D),
    "PositionEmbeddingSine": dict(num_pos_feats=D),  # the tracker memory's (64) is mapped below
    "VETextEncoder": dict(d_model=D, width=32, heads=2, layers=1),
    "MultiheadAttention": dict(embed_dim=D, num_heads=2),
    "TransformerEncoderLayer": dict(d_model=D, dim_feedforward=64),
    "TransformerEncoderFusion": dict(d_model=D, num_layers=1),
    "TransformerDecoderLayer": dict(d_model=D, dim_feedforward=64, n_heads=2),
    "TransformerDecoder": dict(d_model=D, num_layers=2, num_queries=8),
    "TransformerWrapper": dict(d_model=D),
    "MLP": dict(input_dim=D, hidden_dim=64, output_dim=D),
    "DotProductScoring": dict(d_model=D, d_proj=D),
    "PixelDecoder": dict(hidden_dim=D),
    "UniversalSegmentationHead": dict(hidden_dim=D),
    "CXBlock": dict(dim=D),
    "SequenceGeometryEncoder": dict(d_model=D, num_layers=1),
    "TransformerDecoderLayerv2": dict(d_model=D, dim_feedforward=64),
    "TransformerEncoderCrossAttention": dict(d_model=D, num_layers=1),
    "RoPEAttention": dict(embedding_dim=D),
}
TRACKER_PREFIX = "inst_interactive_predictor.model."


@contextlib.contextmanager
def _tiny_classes():
    """Swap model_builder's class names for small-dimension callers while upstream's builder runs."""
    from sam3 import model_builder
    from torch import nn

    saved = {}
    for name, overrides in TINY_OVERRIDES.items():
        if name in vars(model_builder):
            saved[name] = vars(model_builder)[name]
            setattr(model_builder, name, functools.partial(_call_small, saved[name], overrides))
    saved["nn"] = model_builder.nn
    model_builder.nn = _SmallNN(nn)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(model_builder, name, value)


def _call_small(cls, overrides: dict, *args, **kwargs):
    kwargs = dict(kwargs)
    if cls.__name__ == "PositionEmbeddingSine" and kwargs.get("num_pos_feats") == 64:
        return cls(*args, **kwargs)  # the tracker memory encoder's: its own (memory) width, kept
    kwargs.update(overrides)
    return cls(*args, **kwargs)


class _SmallNN:
    """``torch.nn`` as model_builder sees it, with LayerNorm(256) at tiny's width."""

    def __init__(self, nn):
        self._nn = nn

    def __getattr__(self, name):
        value = getattr(self._nn, name)
        if name == "LayerNorm":
            return lambda dim, *a, **k: value(D if dim == 256 else dim, *a, **k)
        return value


def _upstream_build(tiny: bool) -> torch.nn.Module:
    """upstream's builder on the CPU, no checkpoint, with the interactive predictor."""
    sam3_compat.apply()
    with sam3_compat.upstream_quiet(), _tiny_classes() if tiny else contextlib.nullcontext():
        from sam3.model_builder import build_sam3_image_model

        return build_sam3_image_model(bpe_path=sam3_compat.bpe_path(), device="cpu", eval_mode=True,
                                      checkpoint_path=None, load_from_HF=False, enable_inst_interactivity=True)


def build_random_sam3(model_type: str, seed: int = 0) -> torch.nn.Module:
    """SAM 3 with deterministic random weights, every tensor initialised; the caller's RNG is kept."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _upstream_build(tiny=model_type == "sam3_tiny")
        sam3_compat.init_text_encoder(model.backbone.language_backbone.encoder)
    return model.eval()


def from_official_state_dict(state: dict) -> dict:
    """Upstream's mapping (``detector.`` stripped, ``tracker.`` -> the interactive predictor), by prefix."""
    out, other = {}, []
    for key, value in state.items():
        if key.startswith("detector."):
            out[key[len("detector."):]] = value
        elif key.startswith("tracker."):
            out[TRACKER_PREFIX + key[len("tracker."):]] = value
        else:
            other.append(key)
    return out, other


def load_sam3_state_dict(path: str | Path, model_type: str) -> dict[str, torch.Tensor]:
    """``sam3.pt`` of ``model_type`` (flat, or under ``"model"`` as upstream also accepts), memory-mapped."""
    return state_dict_of(load_checkpoint(model_type, path))


def load_strict(model: torch.nn.Module, state: dict, checkpoint, model_type: str) -> None:
    """Load ``sam3.pt``'s tensors into ``model``: every key must match, or one line names the first few."""
    mapped, other = from_official_state_dict(state)
    missing, unexpected = load_tensors(model, mapped, checkpoint, model_type)
    unexpected = other + [("tracker." + k[len(TRACKER_PREFIX):]) if k.startswith(TRACKER_PREFIX) else
                          "detector." + k for k in unexpected]
    missing = [("tracker." + k[len(TRACKER_PREFIX):]) if k.startswith(TRACKER_PREFIX) else "detector." + k
               for k in missing]
    if missing or unexpected:
        raise SamcacheError(f"{checkpoint} does not match {model_type}: {len(missing)} missing keys {missing[:3]}, "
                            f"{len(unexpected)} unexpected keys {unexpected[:3]}")


def build_sam3(model_type: str, checkpoint: str | Path | None = None, seed: int = 0,
               allow_random: bool = False) -> tuple[torch.nn.Module, WeightsId]:
    """SAM 3's image model (with the interactive predictor) in eval mode, on the CPU.

    ``sam3_tiny`` is always random (``seed``); ``sam3`` needs ``sam3.pt`` unless ``allow_random``.
    """
    if model_type not in VARIANTS:
        raise SamcacheError(f"unknown SAM 3 model type {model_type!r}; choose one of {', '.join(VARIANTS)}")
    require_checkpoint(model_type, checkpoint, allow_random)
    if checkpoint is None:
        return build_random_sam3(model_type, seed), WeightsId(None, seed)
    state = load_sam3_state_dict(checkpoint, model_type)
    model = build_random_sam3(model_type, seed)  # upstream builds, then loads: every tensor is overwritten
    load_strict(model, state, checkpoint, model_type)
    return model.eval(), weights_id(checkpoint, seed)
