"""SAM 3's family facts, torch-free: what the cache schema, stages and heads need to know.

----- FAMILY DESCRIPTOR (register this) -----
The cache stores only the ViT trunk's output; both necks (the detector's, read by text prompts, and
the tracker's, read by points and boxes) are recomputed from it in Stage 2 (bit-exact, a few percent
of the backbone's cost; see benchmarks/RESULTS.md "SAM 3 cache layout").
"""

from __future__ import annotations

INPUT_SIZE = 1008  # the squashed square frame (Sam3Processor resolution)
TRUNK_STRIDE = 14  # patch size: the trunk's map is 72 x 72
LOW_RES = 288  # the interactive predictor's low-res logits (and mask_input) are 288 x 288

SAM3_FAMILY: dict = {
    "family": "sam3",
    "model_types": ("sam3", "sam3_tiny"),  # sam3_tiny: small dimensions, random weights, tests only
    "official_checkpoints": {"sam3": "sam3.pt"},
    # name -> (C, h, w) and storage dtype per model type; compute is float32/bf16, storage float16
    "features": {
        "sam3": {"trunk": ((1024, 72, 72), "float16")},
        "sam3_tiny": {"trunk": ((64, 72, 72), "float16")},
    },
    "main_feature": "trunk",  # what a head trains on
    "head_input_channels": {"sam3": {"trunk": 1024}, "sam3_tiny": {"trunk": 64}},
    "input_frame": {
        "size": (INPUT_SIZE, INPUT_SIZE),
        "resize": "squash: stretch to 1008 x 1008, aspect ratio not kept, no padding",
        # original pixel (x, y) in an H x W image -> input frame; x and y scale separately
        "to_input_frame": "x' = x * 1008 / W,  y' = y * 1008 / H",
        "covered": (INPUT_SIZE, INPUT_SIZE),  # the whole frame is image (no padding)
    },
    "preprocessing": {
        "img_size": INPUT_SIZE,
        "resize": "stretch the uint8 image to img_size x img_size (torchvision v2 Resize, bilinear, antialias)",
        "pixel_scale": 255.0, "pixel_mean": [0.5, 0.5, 0.5], "pixel_std": [0.5, 0.5, 0.5],
    },
    "checkpoint_format": ("a state dict (flat, or under 'model') with keys detector.* and tracker.*; "
                          "detector.backbone.vision_backbone.trunk.patch_embed.proj.weight identifies it"),
    "mask_threshold": 0.0,  # interactive predictor: logits > 0
    "num_masks": 3,  # multimask output of the interactive predictor
    "low_res_size": LOW_RES,
    "low_res_clamp": 32.0,  # predict_inst returns (and users feed back) logits clamped to +-32
    "max_hole_area": 256,  # the interactive predictor fills background holes up to this area at 288 x 288
    "text_prompts": True,  # concept (noun-phrase) prompts: instance masks, scores, presence, semantic_seg
    "text_mask_threshold": 0.5,  # Sam3Processor: sigmoid(mask logits) > 0.5
}
