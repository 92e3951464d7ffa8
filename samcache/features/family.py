"""What a model family is, without torch: the descriptor every layer reads (``families`` registers them).

A family package (``samcache/features/<family>/__init__.py``) builds its descriptor from its own variant
table (model type -> the variant's facts, as sam2's ``build_sam.py``); the torch code lives in the same
package's ``backend`` module, imported only when first needed (``families.backend_for``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class Family:
    """A family's facts. Shapes are per image; ``frame`` is (h, w)."""

    name: str  # the cache's ``family`` attribute
    title: str  # how messages name it ("SAM 2.1")
    model_types: tuple[str, ...]
    features: Mapping[str, tuple[int, int, int]]  # array name -> (C, h, w), as the cache stores them
    main_feature: str  # the coarse map a ``main`` head trains on
    frame: tuple[int, int]  # the encoder's input frame (h, w)
    preprocessing: Mapping[str, object]  # pixel constants, written to the cache for readers without samcache
    checkpoint: str  # what a checkpoint file of this family holds (said when a file is not one)
    mask_threshold: float  # logits above it are the mask
    low_res: int  # side of the decoder's low-resolution logits (a mask input must have it)
    backend: str  # "module:Class" implementing samcache.features.backend.Backend
    packages: tuple[str, ...] = ()  # distributions whose versions the cache records
    # model type -> official checkpoint file name; a model type absent here runs on random weights without one
    official_checkpoints: Mapping[str, str] = field(default_factory=dict)
    # a loaded checkpoint file -> the model type it holds, or None; torch-free (keys and shapes only), so that
    # ``features.checkpoints`` asks every family without importing any family's upstream package
    identify: Callable[[object], str | None] = lambda contents: None
    # upstream's automatic mask generator's defaults for this family (pred_iou_thresh, ...); None: upstream
    # ships no automatic mask generator for it, and `samcache everything` refuses its caches
    mask_generator: Mapping[str, float] | None = None

    def head_channels(self) -> dict[str, int]:
        """Input channels a head sees per feature array."""
        return {name: shape[0] for name, shape in self.features.items()}

    def needs_checkpoint(self, model_type: str) -> bool:
        """Whether ``model_type`` has official weights (so running it without a checkpoint would be random)."""
        return model_type in self.official_checkpoints
