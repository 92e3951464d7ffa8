"""SAM 3 (Meta's ``sam3``): the variant table and the descriptors, without torch. ``build`` builds the models,
``backend`` implements the family, ``compat`` holds the CPU workarounds the sam3 package needs.

The cache holds the ViT trunk only; Stage 2 recomputes the neck a path reads (``backend``). ``sam3_tiny``
(small dimensions, random weights, tests) is its own family because its trunk is 64 wide.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

from samcache.features.family import Family


class Sam3Variant(NamedTuple):
    trunk_width: int  # the trunk's patch embedding's output channels: recognises a checkpoint's type
    checkpoint: str | None  # the official file name; None: random weights unless a file is given


VARIANTS = {"sam3": Sam3Variant(1024, "sam3.pt"), "sam3_tiny": Sam3Variant(64, None)}
FRAME = 1008
TRUNK_KEY = "detector.backbone.vision_backbone.trunk.patch_embed.proj.weight"  # in every sam3.pt


def state_dict_of(contents) -> dict | None:
    """sam3.pt's state dict: flat, or under "model" (as upstream also accepts); None if it is not SAM 3's."""
    inner = contents.get("model") if isinstance(contents, dict) and isinstance(contents.get("model"), dict) else contents
    return inner if isinstance(inner, dict) and TRUNK_KEY in inner else None


def identify(contents) -> str | None:
    """The SAM 3 model type of a loaded checkpoint, from its trunk's width (an unknown width: ``sam3``)."""
    state = state_dict_of(contents)
    if state is None:
        return None
    width = int(state[TRUNK_KEY].shape[0])
    return next((t for t, v in VARIANTS.items() if v.trunk_width == width), "sam3")


def _family(name: str) -> Family:
    variant = VARIANTS[name]
    return Family(
        name=name,
        title="SAM 3",
        model_types=(name,),
        features=MappingProxyType({"trunk": (variant.trunk_width, 72, 72)}),
        main_feature="trunk",
        frame=(FRAME, FRAME),
        preprocessing=MappingProxyType({"img_size": FRAME, "resize": "stretch the uint8 image to img_size x "
                                        "img_size (torchvision v2 Resize: bilinear, antialias), then /255",
                                        "pixel_mean": [0.5, 0.5, 0.5], "pixel_std": [0.5, 0.5, 0.5],
                                        "pixel_scale": 255.0}),
        checkpoint=f"a state dict, flat or under 'model', with detector.* and tracker.* ({TRUNK_KEY})",
        mask_threshold=0.0,  # the interactive predictor's (points, boxes); text masks: sigmoid > 0.5
        low_res=288,
        backend="samcache.features.sam3.backend:Sam3Backend",
        packages=("sam3",),
        official_checkpoints=MappingProxyType({name: variant.checkpoint} if variant.checkpoint else {}),
        identify=identify,
    )


SAM3, SAM3_TINY = _family("sam3"), _family("sam3_tiny")
