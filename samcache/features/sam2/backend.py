"""SAM 2.1 beside SAM 1: batched image encoding into cached features, batched prompt decoding.

For one image, ``encode`` computes ``SAM2ImagePredictor.set_image``'s ``_features`` and
``decode`` (``features.tracker_heads``) + ``postprocess`` compute ``SAM2ImagePredictor._predict``; here images are batched,
and prompts of several images share one decoder call (each gathers its image's features by index).

Two differences from SAM 1 shape the cache. SAM 2 stretches every image to 1024x1024 (no
aspect-preserving resize, no padding), so the input frame is the same for all images. And its
mask decoder also reads two high-resolution maps (already projected by the decoder's
conv_s0 / conv_s1 at encode time, as upstream does), so an image has three arrays (``SAM2.features``).
"""

from __future__ import annotations

import numpy as np
import torch
from sam2.modeling.sam2_base import SAM2Base
from torch.nn import functional as F
from torchvision.transforms import functional as TF

from samcache.features.backend import Backend
from samcache.features.device import autocast
from samcache.features.sam2 import SAM2
from samcache.features.sam2.build import build_sam2, build_sam2_prompt_decoder
from samcache.features.tracker_heads import LOW_RES_CLAMP, decode

IMAGE_SIZE = SAM2.frame[0]  # image_size of every sam2.1 config
PIXEL_MEAN = tuple(SAM2.preprocessing["pixel_mean"])  # sam2.utils.transforms.SAM2Transforms, on [0, 1] pixels
PIXEL_STD = tuple(SAM2.preprocessing["pixel_std"])


def prepare_image(image: np.ndarray) -> torch.Tensor:
    """(H,W,3) uint8 RGB -> (3,H,W) uint8: what a DataLoader worker ships (4x smaller than float)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def normalize_images(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) uint8 -> (B,3,1024,1024) float32, as SAM2Transforms: ToTensor, Resize, Normalize.

    One batch shares one (H, W); on the device, so workers never ship the 1024x1024 floats.
    """
    x = images_uint8.to(torch.float32).div(255)  # ToTensor
    x = TF.resize(x, [IMAGE_SIZE, IMAGE_SIZE])  # Resize((1024, 1024)): bilinear, antialias
    return TF.normalize(x, list(PIXEL_MEAN), list(PIXEL_STD))


@torch.inference_mode()
def encode(model: SAM2Base, images_uint8: torch.Tensor, precision: str = "fp32") -> dict[str, torch.Tensor]:
    """(B,3,H,W) uint8 images -> the family's three arrays as (B,C,h,w) float32: set_image's ``_features``, batched."""
    device = next(model.parameters()).device
    x = normalize_images(images_uint8.to(device, non_blocking=True))
    with autocast(device, precision):
        fpn = model.forward_image(x)["backbone_fpn"]  # also applies conv_s0 / conv_s1 to levels 0, 1
    high_res_0, high_res_1, embed = (level.float() for level in fpn[-3:])
    if model.directly_add_no_mem_embed:  # set_image adds it to the lowest-resolution map (in float32)
        embed = embed + model.no_mem_embed.view(1, -1, 1, 1)
    return {"image_embed": embed, "high_res_feats_0": high_res_0, "high_res_feats_1": high_res_1}


def to_input_frame(coords: np.ndarray | torch.Tensor, original_size: tuple[int, int]) -> np.ndarray | torch.Tensor:
    """Original-pixel [x, y] (..., 2) -> the 1024x1024 input frame (transform_coords, normalize=True)."""
    h, w = (int(v) for v in original_size)
    xy = torch.as_tensor(coords, dtype=torch.float32).clone()
    xy[..., 0] = xy[..., 0] / w
    xy[..., 1] = xy[..., 1] / h
    xy = xy * IMAGE_SIZE
    return xy if isinstance(coords, torch.Tensor) else xy.numpy()


def postprocess(low_res: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
    """(B,C,256,256) logits -> (B,C,H,W) logits: postprocess_masks with no hole / sprinkle filling.

    The predictor's defaults (max_hole_area = max_sprinkle_area = 0) skip the connected-component
    passes, leaving one bilinear resize; ``> SAM2.mask_threshold`` gives its masks.
    """
    size = tuple(int(v) for v in original_size)
    return F.interpolate(low_res.float(), size, mode="bilinear", align_corners=False)


def fill_holes_and_sprinkles(low_res: torch.Tensor, area: int, threshold: float) -> torch.Tensor:
    """(K,r,r) logits -> SAM2Transforms.postprocess_masks' low-res step with max_hole_area = max_sprinkle_area =
    ``area`` (what SAM2AutomaticMaskGenerator sets from min_mask_region_area): background components (8-connected)
    of at most ``area`` pixels become threshold + 10, foreground ones threshold - 10, both found on the input.

    Upstream labels components with sam2's CUDA extension and skips this step, with a warning, where the
    extension is missing (CPU installs); here scikit-image labels them on the host, on every device."""
    from skimage.measure import label

    masks = low_res.float().cpu().numpy()
    out = masks.copy()
    for k, logits in enumerate(masks):
        for region, value in ((logits <= threshold, threshold + 10.0), (logits > threshold, threshold - 10.0)):
            labels = label(region, connectivity=2)
            sizes = np.bincount(labels.ravel())
            small = (labels > 0) & (sizes[labels] <= area)
            out[k][small] = value
    return torch.from_numpy(out).to(low_res.device)


class Sam2Backend(Backend):
    cleans_final_masks = False
    def input_size(self, original_size):
        return SAM2.frame

    def prepare(self, image):
        return prepare_image(image), SAM2.frame

    def build_encoder(self, model_type, checkpoint, seed, allow_random=False, attention="sdpa"):
        return build_sam2(model_type, checkpoint, seed, allow_random)  # Hiera has its own SDPA

    def _encode(self, encoder, images, input_sizes):
        return encode(encoder, images, precision="fp32")  # autocast is the caller's

    def build_decoder(self, model_type, checkpoint, seed, allow_random=False):
        return build_sam2_prompt_decoder(model_type, checkpoint, seed, allow_random)

    def decode(self, decoder, features, image_index, prompts, multimask):
        return decode(decoder, features, image_index, prompts, multimask)

    def build_predictor(self, model_type, checkpoint, seed, allow_random=False):
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        return SAM2ImagePredictor(build_sam2(model_type, checkpoint, seed, allow_random)[0])

    def predictor_class(self):
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        return SAM2ImagePredictor

    def set_features(self, predictor, features, original_size, input_size):
        predictor.reset_predictor()
        device = predictor.device
        predictor._features = {"image_embed": features["image_embed"].to(device),
                               "high_res_feats": [features["high_res_feats_0"].to(device),
                                                  features["high_res_feats_1"].to(device)]}
        predictor._orig_hw = [tuple(original_size)]
        predictor._is_image_set = True

    def to_input_frame(self, coords, original_size):
        return to_input_frame(np.asarray(coords, np.float64), original_size).astype(np.float64)

    def postprocess(self, low_res, input_size, original_size):
        return postprocess(low_res, original_size)

    def fill_small_regions(self, low_res, area):
        return fill_holes_and_sprinkles(low_res, area, SAM2.mask_threshold)

    def feedback(self, low_res):
        return low_res.clamp(-LOW_RES_CLAMP, LOW_RES_CLAMP)  # SAM2ImagePredictor returns (and users feed back) clamped logits
