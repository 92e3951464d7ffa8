"""Model families as data: one torch-free descriptor per family, and a registry of them.

A descriptor says everything that code outside the family's own module needs to know: its model
types, the feature arrays the cache holds for an image, the encoder's input frame and how it maps
to the original image, the preprocessing constants, how its checkpoints are recognised, the
decoder's mask threshold and number of masks, and which module implements it. The cache schema,
readers, datasets, heads and reports read descriptors; only the backend module imports torch and
the upstream package, and only when it is first used (``backend_for``), as timm registers models.

Adding a family is one module (a ``Backend`` subclass, see ``samcache.features.backend``) plus one
``register(Family(...))`` call below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from samcache.errors import SamcacheError


@dataclass(frozen=True)
class Family:
    """What a model family is, without torch. Shapes are per image; ``frame`` is (h, w)."""

    name: str  # the cache's ``family`` attribute
    model_types: tuple[str, ...]
    features: Mapping[str, tuple[int, int, int]]  # array name -> (C, h, w), as the cache stores them
    main_feature: str  # the coarse map a ``main`` head trains on
    frame: tuple[int, int]  # the encoder's input frame (h, w)
    resize: str  # "longest-side": aspect kept, zero padding bottom/right; "stretch": squashed to the frame
    preprocessing: Mapping[str, object]  # pixel constants, written to the cache for readers without samcache
    checkpoint: str  # how a checkpoint file of this family is recognised (user-facing)
    mask_threshold: float  # logits above it are the mask
    num_masks: int  # masks per prompt with multimask output
    low_res: int  # side of the decoder's low-resolution logits
    backend: str  # "module:Class" implementing samcache.features.backend.Backend
    packages: tuple[str, ...] = ()  # distributions whose versions the cache records
    example_checkpoints: Mapping[str, str] = field(default_factory=dict)  # model type -> official file name

    def head_channels(self) -> dict[str, int]:
        """Input channels a head sees per feature array."""
        return {name: shape[0] for name, shape in self.features.items()}


FAMILIES: dict[str, Family] = {}
_BACKENDS: dict[str, object] = {}


def register(family: Family) -> Family:
    """Add a family; its backend module is imported only when ``backend_for`` first needs it."""
    clash = set(family.model_types) & {t for f in FAMILIES.values() for t in f.model_types}
    if family.name in FAMILIES or clash:
        raise ValueError(f"family {family.name!r} or model types {sorted(clash)} registered twice")
    if family.main_feature not in family.features:
        raise ValueError(f"{family.name}: main feature {family.main_feature!r} is not one of its features")
    FAMILIES[family.name] = family
    return family


def model_types() -> tuple[str, ...]:
    """Every registered model type, family by family (the CLI's choices)."""
    return tuple(t for f in FAMILIES.values() for t in f.model_types)


def family_of(model_type: str) -> Family:
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise SamcacheError(f"unknown model type {model_type!r}; choose one of {', '.join(model_types())}")


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise SamcacheError(f"unknown model family {name!r} (this samcache knows {', '.join(FAMILIES)}); "
                            f"a newer samcache may have written this cache")
    return FAMILIES[name]


def backend_for(model_type_or_family: str):
    """The family's ``Backend`` (imported and built once), from a model type or a family name."""
    family = FAMILIES.get(model_type_or_family) or family_of(model_type_or_family)
    if family.name not in _BACKENDS:
        module, cls = family.backend.split(":")
        _BACKENDS[family.name] = getattr(importlib.import_module(module), cls)(family)
    return _BACKENDS[family.name]


# --- the registered families -------------------------------------------------------------------

SAM = register(Family(
    name="sam",
    model_types=("vit_h", "vit_l", "vit_b", "tiny"),
    features=MappingProxyType({"embeddings": (256, 64, 64)}),
    main_feature="embeddings",
    frame=(1024, 1024),
    resize="longest-side",
    preprocessing=MappingProxyType({"img_size": 1024, "resize": "longest side to img_size, zero padding",
                                    "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375]}),
    checkpoint="segment-anything state dict (image_encoder.*, prompt_encoder.*, mask_decoder.*)",
    mask_threshold=0.0,
    num_masks=3,
    low_res=256,
    backend="samcache.features.sam1:SamBackend",
    packages=("segment-anything",),
    example_checkpoints=MappingProxyType({"vit_h": "sam_vit_h_4b8939.pth", "vit_l": "sam_vit_l_0b3195.pth",
                                          "vit_b": "sam_vit_b_01ec64.pth"}),
))

SAM2 = register(Family(
    name="sam2",
    model_types=("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l"),
    features=MappingProxyType({"image_embed": (256, 64, 64), "high_res_feats_0": (32, 256, 256),
                               "high_res_feats_1": (64, 128, 128)}),
    main_feature="image_embed",
    frame=(1024, 1024),
    resize="stretch",
    preprocessing=MappingProxyType({"img_size": 1024, "resize": "stretch to img_size x img_size (bilinear, antialias)",
                                    "pixel_mean": [0.485, 0.456, 0.406], "pixel_std": [0.229, 0.224, 0.225],
                                    "pixel_scale": 255.0}),
    checkpoint="SAM 2.1 checkpoint: {'model': state dict with image_encoder.trunk.*, sam_mask_decoder.*, "
               "no_obj_embed_spatial}",
    mask_threshold=0.0,
    num_masks=3,
    low_res=256,
    backend="samcache.features.sam2:Sam2Backend",
    packages=("sam2",),
    example_checkpoints=MappingProxyType({"sam2.1_hiera_t": "sam2.1_hiera_tiny.pt",
                                          "sam2.1_hiera_s": "sam2.1_hiera_small.pt",
                                          "sam2.1_hiera_b+": "sam2.1_hiera_base_plus.pt",
                                          "sam2.1_hiera_l": "sam2.1_hiera_large.pt"}),
))

# SAM 3: the cache holds the ViT trunk only; Stage 2 recomputes the neck a path reads (features/sam3.py).
# sam3_tiny (small dimensions, random weights, tests) is its own family because its trunk is 64 wide.
_SAM3_COMMON = dict(
    main_feature="trunk",
    frame=(1008, 1008),
    resize="stretch",
    preprocessing=MappingProxyType({"img_size": 1008, "resize": "stretch the uint8 image to img_size x img_size "
                                    "(torchvision v2 Resize: bilinear, antialias), then /255",
                                    "pixel_mean": [0.5, 0.5, 0.5], "pixel_std": [0.5, 0.5, 0.5],
                                    "pixel_scale": 255.0}),
    checkpoint="SAM 3 checkpoint (sam3.pt): a state dict, flat or under 'model', with detector.* and tracker.* "
               "(detector.backbone.vision_backbone.trunk.patch_embed.proj.weight)",
    mask_threshold=0.0,  # the interactive predictor's (points, boxes); text masks: sigmoid > 0.5
    num_masks=3,
    low_res=288,
    backend="samcache.features.sam3:Sam3Backend",
    packages=("sam3",),
)
SAM3 = register(Family(name="sam3", model_types=("sam3",), features=MappingProxyType({"trunk": (1024, 72, 72)}),
                       example_checkpoints=MappingProxyType({"sam3": "sam3.pt"}), **_SAM3_COMMON))
SAM3_TINY = register(Family(name="sam3_tiny", model_types=("sam3_tiny",),
                            features=MappingProxyType({"trunk": (64, 72, 72)}), **_SAM3_COMMON))
