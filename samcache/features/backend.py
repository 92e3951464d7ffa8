"""The one interface every model family implements, so that stages never branch on the family.

A backend builds an encoder or a prompt decoder from a checkpoint (or random weights), prepares
an image in a DataLoader worker, encodes a batch into named feature arrays (what the cache
stores), and decodes prompts (a ``Prompts`` batch) from those arrays. Text prompts are an optional
capability: a family that answers noun phrases sets ``text_prompts`` and implements ``decode_text`` and
``upsample_text_masks``; the others refuse them in one line. Its facts (feature shapes, frame,
thresholds, checkpoints) are its ``Family`` descriptor's (``samcache.features.family``);
``families.backend_for(model_type)`` imports and builds it on first use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from samcache.errors import SamcacheError
from samcache.features.checkpoints import require_checkpoint
from samcache.features.device import PASSES, autocast
from samcache.features.family import Family
from samcache.features.weights import WeightsId


@dataclass(frozen=True)
class Prompts:
    """B prompts in the input frame, on the decoder's device; each part is None when absent."""

    point_coords: torch.Tensor | None = None  # (B,N,2)
    point_labels: torch.Tensor | None = None  # (B,N) 1 foreground, 0 background
    boxes: torch.Tensor | None = None  # (B,4) x0 y0 x1 y1
    mask_input: torch.Tensor | None = None  # (B,1,low_res,low_res): a previous prediction's logits

    def __getitem__(self, rows: slice) -> "Prompts":
        """The prompts ``rows`` (a chunk of the batch)."""
        part = lambda t: None if t is None else t[rows]  # noqa: E731
        return Prompts(part(self.point_coords), part(self.point_labels), part(self.boxes), part(self.mask_input))


@dataclass
class TextResult:
    """One (image, phrase) grounding of a text-prompt family: Q candidate instances at its mask resolution."""

    mask_logits: torch.Tensor  # (Q,h,w) float32 (``Backend.upsample_text_masks`` makes the masks)
    scores: torch.Tensor  # (Q,) float32 in [0,1]
    presence: float  # does the phrase occur in the image at all (its confidence is ``scores * presence``)
    boxes: torch.Tensor  # (Q,4) normalised cxcywh
    semantic_logits: torch.Tensor  # (h,w) float32: a per-phrase semantic map's logits


class Backend(ABC):
    """A model family's code; ``self.info`` is its descriptor, the one place for its facts."""

    text_prompts = False  # the decoder also answers noun phrases (``decode_text``); SAM 3 sets it
    # the automatic mask generator's min_mask_region_area cleans its final masks (SamAutomaticMaskGenerator's
    # postprocess_small_regions); SAM2AutomaticMaskGenerator only fills the low-res logits (fill_small_regions)
    cleans_final_masks = True

    def __init__(self, info: Family):
        self.info = info

    @property
    def family(self) -> str:
        return self.info.name

    @property
    def features(self) -> dict[str, tuple[int, int, int]]:
        """name -> (C, h, w) per image, as the cache stores them."""
        return dict(self.info.features)

    @property
    def main_feature(self) -> str:
        return self.info.main_feature

    @abstractmethod
    def input_size(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the input frame that the image covers."""

    @abstractmethod
    def prepare(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """HxWx3 uint8 -> (uint8 tensor cheap to ship from a worker, input_size)."""

    @abstractmethod
    def build_encoder(self, model_type: str, checkpoint, seed: int, allow_random: bool = False,
                      attention: str = "sdpa") -> tuple[nn.Module, WeightsId]:
        """What ``encode`` runs, with its weights' identity."""

    @abstractmethod
    def _encode(self, encoder: nn.Module, images: torch.Tensor, input_sizes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch on the encoder's device -> {name: (B,C,h,w) float32}, under the caller's autocast."""

    @abstractmethod
    def build_decoder(self, model_type: str, checkpoint, seed: int, allow_random: bool = False
                      ) -> tuple[nn.Module, WeightsId]:
        """Only what decoding needs (the image encoder is never built from a checkpoint)."""

    @abstractmethod
    def decode(self, decoder: nn.Module, features: dict[str, torch.Tensor], image_index: torch.Tensor,
               prompts: Prompts, multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """B prompts over (M,...) features (prompt b on image ``image_index[b]``) -> low-res logits
        (B,C,low_res,low_res), scores (B,C). ``features`` is the caller's and is never changed."""

    def decode_text(self, decoder: nn.Module, features: dict[str, torch.Tensor], image_index: torch.Tensor,
                    phrases: list[str]) -> list[TextResult]:
        """P noun phrases (phrase p on image ``image_index[p]``) over (M,...) cached features -> P results.
        Only families with ``text_prompts``."""
        raise self._no_text()

    def upsample_text_masks(self, mask_logits: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
        """(Q,h,w) ``TextResult.mask_logits`` -> (Q,H,W) bool masks at the original size."""
        raise self._no_text()

    def _no_text(self) -> SamcacheError:
        return SamcacheError(f"{self.info.title} ({self.family}) does not answer text prompts; "
                             f"decode a cache of a family that does (SAM 3)")

    @abstractmethod
    def to_input_frame(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Original-pixel [x, y] (..., 2) -> the input frame."""

    @abstractmethod
    def postprocess(self, low_res: torch.Tensor, input_size, original_size) -> torch.Tensor:
        """(B,C,low_res,low_res) logits -> (B,C,H,W) logits at the original resolution."""

    @abstractmethod
    def build_predictor(self, model_type: str, checkpoint, seed: int, allow_random: bool = False):
        """Upstream's own image predictor for these weights (what notebook users already know)."""

    def predictor_class(self) -> type | None:
        """The class of ``build_predictor``'s predictors (``set_precomputed`` refuses others); None: unchecked."""
        return None

    def move_predictor(self, predictor, device: torch.device) -> None:
        """Put ``predictor`` (from ``build_predictor``) on ``device``, inputs included."""
        predictor.model.to(device)

    @abstractmethod
    def set_features(self, predictor, features: dict[str, torch.Tensor], original_size: tuple[int, int],
                     input_size: tuple[int, int]) -> None:
        """Put one image's cached maps ({name: (1,C,h,w) float32}) into ``predictor`` as its ``set_image`` would."""

    def fill_small_regions(self, low_res: torch.Tensor, area: int) -> torch.Tensor:
        """(K,r,r) low-res logits -> what the family's automatic mask generator upsamples when its
        ``min_mask_region_area`` is ``area`` > 0 (SAM 1: unchanged; it cleans the final masks only)."""
        return low_res

    def feedback(self, low_res: torch.Tensor) -> torch.Tensor:
        """The chosen low-res logits as the next ``mask_input``, as upstream's predictor returns them."""
        return low_res

    def require_weights_file(self, model_type: str, checkpoint) -> None:
        """Cheap checks (a checkpoint given where needed, and present), before any lock is taken."""
        require_checkpoint(model_type, checkpoint)

    def check_weights(self, model_type: str, checkpoint, seed: int) -> WeightsId:
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
