"""SAM 1 (segment-anything: vit_h, vit_l, vit_b, and the random-weight ``tiny``): the variant table and the
descriptor, without torch. ``build`` builds the models from this table, ``backend`` implements the family."""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import NamedTuple

from samcache.features.family import Family


class Sam1Variant(NamedTuple):
    """The image encoder's (embed_dim, depth, num_heads, global_attn_indexes), as segment_anything.build_sam's;
    width and depth recognise a checkpoint's type from its keys."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    checkpoint: str | None  # the official file name; None: random weights (``tiny``)


VARIANTS = {
    "vit_h": Sam1Variant(1280, 32, 16, (7, 15, 23, 31), "sam_vit_h_4b8939.pth"),
    "vit_l": Sam1Variant(1024, 24, 16, (5, 11, 17, 23), "sam_vit_l_0b3195.pth"),
    "vit_b": Sam1Variant(768, 12, 12, (2, 5, 8, 11), "sam_vit_b_01ec64.pth"),
    "tiny": Sam1Variant(64, 2, 2, (1,), None),  # a small ViT in front of SAM's real decoder, for tests
}

FRAME = 1024  # every variant's input frame (ResizeLongestSide to it, then zero padding)
_PATCH = "image_encoder.patch_embed.proj.weight"
_BLOCK = re.compile(r"image_encoder\.blocks\.(\d+)\.")


def identify(contents) -> str | None:
    """The SAM 1 model type of a loaded checkpoint (a flat state dict), from its encoder width and depth."""
    if not isinstance(contents, dict) or isinstance(contents.get("model"), dict) or _PATCH not in contents:
        return None
    blocks = {int(m.group(1)) for k in contents if isinstance(k, str) and (m := _BLOCK.match(k))}
    width = contents[_PATCH].shape[0]
    return next((t for t, v in VARIANTS.items() if v.embed_dim == width and v.depth == len(blocks)), None)


SAM = Family(
    name="sam",
    title="SAM 1",
    model_types=tuple(VARIANTS),
    features=MappingProxyType({"embeddings": (256, 64, 64)}),
    main_feature="embeddings",
    frame=(FRAME, FRAME),
    preprocessing=MappingProxyType({"img_size": FRAME, "resize": "longest side to img_size, zero padding",
                                    "pixel_mean": [123.675, 116.28, 103.53], "pixel_std": [58.395, 57.12, 57.375]}),
    checkpoint="a segment-anything state dict (image_encoder.*, prompt_encoder.*, mask_decoder.*)",
    mask_threshold=0.0,
    low_res=256,
    backend="samcache.features.sam1.backend:SamBackend",
    packages=("segment-anything",),
    official_checkpoints=MappingProxyType({t: v.checkpoint for t, v in VARIANTS.items() if v.checkpoint}),
    identify=identify,
    mask_generator=MappingProxyType({"points_per_side": 32, "pred_iou_thresh": 0.88, "stability_score_thresh": 0.95,
                                    "stability_score_offset": 1.0, "box_nms_thresh": 0.7,
                                    "min_mask_region_area": 0}),  # SamAutomaticMaskGenerator's
)
