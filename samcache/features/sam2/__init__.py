"""SAM 2.1 (sam2's Hiera t / s / b+ / l): the variant table and the descriptor, without torch.
``build`` builds the models from this table, ``backend`` implements the family."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import NamedTuple

from samcache.features.family import Family


class Sam2Variant(NamedTuple):
    config: str  # hydra config name in the sam2 package
    checkpoint: str  # official checkpoint file name
    trunk_width: int  # Hiera embed_dim, and ...
    trunk_depth: int  # ... sum(stages): together they recognise a checkpoint's type


VARIANTS = {
    "sam2.1_hiera_t": Sam2Variant("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt", 96, 12),
    "sam2.1_hiera_s": Sam2Variant("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt", 96, 16),
    "sam2.1_hiera_b+": Sam2Variant("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt", 112, 24),
    "sam2.1_hiera_l": Sam2Variant("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt", 144, 48),
}

FRAME = 1024  # every sam2.1 config's image_size (images are stretched to it)
_PATCH = "image_encoder.trunk.patch_embed.proj.weight"
_BLOCK = re.compile(r"image_encoder\.trunk\.blocks\.(\d+)\.")


def identify(contents) -> str | None:
    """The SAM 2 model type of a loaded checkpoint ({"model": state dict}), from its Hiera trunk width and depth
    (SAM 2.0 trunks are the same: ``build`` tells them apart)."""
    state = contents.get("model") if isinstance(contents, dict) else None
    if not isinstance(state, dict) or _PATCH not in state:
        return None
    blocks = {int(m.group(1)) for k in state if isinstance(k, str) and (m := _BLOCK.match(k))}
    width = state[_PATCH].shape[0]
    return next((t for t, v in VARIANTS.items() if v.trunk_width == width and v.trunk_depth == len(blocks)), None)


SAM2 = Family(
    name="sam2",
    title="SAM 2.1",
    model_types=tuple(VARIANTS),
    features=MappingProxyType({"image_embed": (256, 64, 64), "high_res_feats_0": (32, 256, 256),
                               "high_res_feats_1": (64, 128, 128)}),
    main_feature="image_embed",
    frame=(FRAME, FRAME),
    preprocessing=MappingProxyType({"img_size": FRAME, "resize": "stretch to img_size x img_size (bilinear, antialias)",
                                    "pixel_mean": [0.485, 0.456, 0.406], "pixel_std": [0.229, 0.224, 0.225],
                                    "pixel_scale": 255.0}),
    checkpoint="{'model': a state dict with image_encoder.trunk.*, sam_mask_decoder.*, no_obj_embed_spatial}",
    mask_threshold=0.0,
    low_res=256,
    backend="samcache.features.sam2.backend:Sam2Backend",
    packages=("sam2",),
    official_checkpoints=MappingProxyType({t: v.checkpoint for t, v in VARIANTS.items()}),
    identify=identify,
    mask_generator=MappingProxyType({"points_per_side": 32, "pred_iou_thresh": 0.8, "stability_score_thresh": 0.95,
                                    "stability_score_offset": 1.0, "box_nms_thresh": 0.7,
                                    "min_mask_region_area": 0}),  # SAM2AutomaticMaskGenerator's
)
