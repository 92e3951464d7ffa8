"""One backend per model family behind one small interface, so the stages never branch on the family.

A backend builds an encoder or a prompt decoder from a checkpoint (or random weights), prepares
an image in a DataLoader worker, encodes a batch into named feature arrays (what the cache
stores), and decodes prompts from those arrays. ``backend_for(model_type)`` finds it.

- ``sam``  (segment-anything: vit_h, vit_l, vit_b, tiny): one array ``embeddings`` (256,64,64);
  ResizeLongestSide to 1024 and zero padding, so ``input_size`` is the covered (h, w).
- ``sam2`` (SAM 2.1 Hiera t/s/b+/l): ``image_embed`` (256,64,64) and the decoder's two projected
  high-resolution maps; images are stretched to 1024x1024, so ``input_size`` is always (1024, 1024).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch import nn

from samcache.errors import SamcacheError
from samcache.features import models, preprocess
from samcache.features.encoder import PASSES, autocast

SAM2_TYPES = ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l")  # features.sam2_build


class Backend(ABC):
    family: str
    model_types: tuple[str, ...]
    features: dict[str, tuple[int, int, int]]  # name -> (C, h, w) per image, in the cache
    main_feature: str  # the 64x64 map a head trains on
    preprocessing: dict  # written to the cache's attributes, for readers without samcache

    @abstractmethod
    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the 1024 input frame that the image covers."""

    @abstractmethod
    def prepare(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """HxWx3 uint8 -> (uint8 tensor cheap to ship from a worker, input_size)."""

    @abstractmethod
    def build_encoder(self, model_type: str, checkpoint, seed: int, allow_random: bool = False,
                      attention: str = "sdpa") -> tuple[nn.Module, models.WeightsId]:
        """What ``encode`` runs, with its weights' identity."""

    @abstractmethod
    def _encode(self, encoder: nn.Module, images: torch.Tensor, input_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch on the encoder's device -> {name: (B,C,h,w) float32}, under the caller's autocast."""

    @abstractmethod
    def build_decoder(self, model_type: str, checkpoint, seed: int, allow_random: bool = False
                      ) -> tuple[nn.Module, models.WeightsId]:
        """Only what decoding needs (the image encoder is never built from a checkpoint)."""

    @abstractmethod
    def decode(self, decoder: nn.Module, features: dict[str, torch.Tensor], image_index: torch.Tensor,
               point_coords, point_labels, boxes, multimask: bool, mask_input=None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts (1024-frame coordinates) over (M,...) features -> logits (B,C,256,256), scores (B,C)."""

    @abstractmethod
    def to_input_frame(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Original-pixel [x, y] -> the 1024 input frame."""

    @abstractmethod
    def postprocess(self, low_res: torch.Tensor, input_size, original_size) -> torch.Tensor:
        """(B,C,256,256) logits -> (B,C,H,W) logits at the original resolution."""

    def feedback(self, low_res: torch.Tensor) -> torch.Tensor:
        """The chosen low-res logits as the next ``mask_input``, as upstream's predictor returns them."""
        return low_res

    def require_weights_file(self, model_type: str, checkpoint) -> None:
        """Cheap checks (a checkpoint given where needed, and present), before any lock is taken."""
        if checkpoint is None and model_type != "tiny":
            raise SamcacheError(f"{model_type} needs --checkpoint")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise SamcacheError(f"checkpoint not found: {checkpoint}")

    def check_weights(self, model_type: str, checkpoint, seed: int) -> models.WeightsId:
        """The weights' identity without building the model on the GPU (Dask drivers)."""
        return self.build_decoder(model_type, checkpoint, seed)[1]

    def dummy_batch(self, n: int, original_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` prepared blank images of the split's size: probes of memory per image."""
        image, size = self.prepare(np.zeros((*original_size, 3), np.uint8))
        return image[None].repeat(n, *([1] * image.dim())), torch.tensor([size] * n, dtype=torch.int32)

    @torch.inference_mode()
    def encode(self, encoder: nn.Module, images: torch.Tensor, input_sizes: torch.Tensor,
               precision: str) -> dict[str, torch.Tensor]:
        """Batch -> {name: (B,C,h,w) float32}; counts image-encoder passes (stage records report them)."""
        device = next(encoder.parameters()).device
        with autocast(device, precision):
            out = self._encode(encoder, images.to(device, non_blocking=True), input_sizes)
        PASSES["images"] += len(images)
        return {name: value.float() for name, value in out.items()}


class SamBackend(Backend):
    family = "sam"
    model_types = models.MODEL_TYPES
    features = {"embeddings": (256, 64, 64)}
    main_feature = "embeddings"
    preprocessing = {"img_size": preprocess.IMG_SIZE, "resize": "longest side to img_size, zero padding",
                     "pixel_mean": list(preprocess.PIXEL_MEAN), "pixel_std": list(preprocess.PIXEL_STD)}

    def input_size(self, original_size):
        return preprocess.input_size(original_size)

    def prepare(self, image):
        return preprocess.resize_and_pad_uint8(image)

    def build_encoder(self, model_type, checkpoint, seed, allow_random=False, attention="sdpa"):
        sam, weights = models.build_sam(model_type, checkpoint, seed, allow_random, attention)
        return sam.image_encoder, weights

    def _encode(self, encoder, images, input_sizes):
        return {"embeddings": encoder(preprocess.normalize_padded(images, input_sizes))}

    def build_decoder(self, model_type, checkpoint, seed, allow_random=False):
        pe, md, weights = models.build_prompt_decoder(model_type, checkpoint, seed, allow_random)
        return SamPromptDecoder(pe, md).eval(), weights

    def check_weights(self, model_type, checkpoint, seed):
        return models.check_weights(model_type, checkpoint, seed)

    def require_weights_file(self, model_type, checkpoint):
        models.require_weights_file(model_type, checkpoint)

    def decode(self, decoder, features, image_index, point_coords, point_labels, boxes, multimask, mask_input=None):
        from samcache.features.decoder import decode

        return decode(decoder.prompt_encoder, decoder.mask_decoder, features["embeddings"], image_index,
                      point_coords, point_labels, boxes, multimask, mask_input)

    def to_input_frame(self, coords, original_size):
        return preprocess.to_input_frame(coords, original_size)

    def postprocess(self, low_res, input_size, original_size):
        return preprocess.postprocess_logits(low_res, input_size, original_size)


class SamPromptDecoder(nn.Module):
    """segment-anything's prompt encoder and mask decoder, as one module."""

    def __init__(self, prompt_encoder: nn.Module, mask_decoder: nn.Module):
        super().__init__()
        self.prompt_encoder, self.mask_decoder = prompt_encoder, mask_decoder


class Sam2Backend(Backend):
    family = "sam2"
    model_types = SAM2_TYPES
    features = {"image_embed": (256, 64, 64), "high_res_feats_0": (32, 256, 256), "high_res_feats_1": (64, 128, 128)}
    main_feature = "image_embed"
    preprocessing = {"img_size": 1024, "resize": "stretch to img_size x img_size (bilinear, antialias)",
                     "pixel_mean": [0.485, 0.456, 0.406], "pixel_std": [0.229, 0.224, 0.225], "pixel_scale": 255.0}

    @staticmethod
    def _sam2():
        from samcache.features import sam2  # imported on first use: hydra and the sam2 package are not light

        return sam2

    def input_size(self, original_size):
        return (1024, 1024)

    def prepare(self, image):
        return self._sam2().prepare_image(image), (1024, 1024)

    def build_encoder(self, model_type, checkpoint, seed, allow_random=False, attention="sdpa"):
        return self._sam2().build_sam2(model_type, checkpoint, seed, allow_random)  # Hiera has its own SDPA

    def _encode(self, encoder, images, input_sizes):
        return self._sam2().encode(encoder, images, precision="fp32")  # autocast is the caller's

    def build_decoder(self, model_type, checkpoint, seed, allow_random=False):
        return self._sam2().build_sam2_prompt_decoder(model_type, checkpoint, seed, allow_random)

    def require_weights_file(self, model_type, checkpoint):
        if checkpoint is None:
            official = self._sam2().SAM2_MODEL_TYPES[model_type].checkpoint
            raise SamcacheError(f"{model_type} needs --checkpoint (e.g. checkpoints/{official})")
        super().require_weights_file(model_type, checkpoint)

    def decode(self, decoder, features, image_index, point_coords, point_labels, boxes, multimask, mask_input=None):
        return self._sam2().decode(decoder, features, image_index, point_coords, point_labels, boxes, mask_input,
                                   multimask)

    def to_input_frame(self, coords, original_size):
        return self._sam2().to_input_frame(np.asarray(coords, np.float64), original_size).astype(np.float64)

    def postprocess(self, low_res, input_size, original_size):
        return self._sam2().postprocess(low_res, original_size)

    def feedback(self, low_res):
        return low_res.clamp(-32.0, 32.0)  # SAM2ImagePredictor returns (and users feed back) clamped logits


BACKENDS = {b.family: b for b in (SamBackend(), Sam2Backend())}
MODEL_TYPES = tuple(t for b in BACKENDS.values() for t in b.model_types)
FAMILY_OF = {t: b.family for b in BACKENDS.values() for t in b.model_types}


def backend_for(model_type: str) -> Backend:
    if model_type not in FAMILY_OF:
        raise SamcacheError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    return BACKENDS[FAMILY_OF[model_type]]
