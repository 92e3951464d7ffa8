"""`samcache everything`: SAM's automatic mask generator on a cache split, optionally refining a head (SSA)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from samcache.cache.schema import DEFAULT_CACHE
from samcache.pipeline.config import StageConfig, register
from samcache.pipeline.configs.fields import (CACHE_HELP, OUT_HELP, OVERWRITE_HELP, Batch, Device, ModelType,
                                              NonNegInt, PosInt, SplitName, Workers)

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
FAMILY_DEFAULT = " (default: the family's upstream generator's: {})"


@register
class EverythingConfig(StageConfig):
    SECTION = "everything"
    cache: str = Field(DEFAULT_CACHE, description=CACHE_HELP)
    split: SplitName = Field("val", description="Split to segment.")
    checkpoint: Optional[str] = Field(None, description="The cache's checkpoint (SAM 1 .pth or SAM 2.1 .pt; none "
                                                        "for random-weight caches); the image encoder never loads.")
    model_type: Optional[ModelType] = Field(None, description="Must match the cache (default: the cache's).")
    points_per_side: Optional[PosInt] = Field(None, description="Grid of points_per_side x points_per_side "
                                                                "single-point prompts" + FAMILY_DEFAULT.format("32"))
    points_per_batch: Optional[PosInt] = Field(None, description="Prompts per decoder call (default: as many as "
                                                                 "measured free memory allows; upstream's is 64). "
                                                                 "The masks do not depend on it.")
    pred_iou_thresh: Optional[Fraction] = Field(None, description="Keep masks whose predicted IoU is above this"
                                                + FAMILY_DEFAULT.format("SAM 1 0.88, SAM 2.1 0.8"))
    stability_score_thresh: Optional[Fraction] = Field(None, description="Keep masks whose stability score is at "
                                                       "least this" + FAMILY_DEFAULT.format("0.95"))
    stability_score_offset: Optional[Annotated[float, Field(ge=0.0, le=100.0)]] = Field(
        None, description="Logit offset of the stability score's two cuts" + FAMILY_DEFAULT.format("1.0"))
    box_nms_thresh: Optional[Fraction] = Field(None, description="Box IoU above which the mask with the lower "
                                               "predicted IoU is dropped" + FAMILY_DEFAULT.format("0.7"))
    min_mask_region_area: Optional[NonNegInt] = Field(
        None, description="Remove holes and islands smaller than this many pixels (SAM 1: from the final masks; "
                          "SAM 2.1: from the low-res logits, as its generator does)" + FAMILY_DEFAULT.format("0"))
    crop_n_layers: NonNegInt = Field(0, description="Only 0 (the full image): crops would need the encoder's "
                                                    "features of each crop, which the cache does not hold.")
    refine_with: Optional[str] = Field(None, description="A head (a train-head run folder, or a head checkpoint) "
                                                         "to refine SSA-style: each mask takes the majority class "
                                                         "of the head's prediction inside it; the refined label "
                                                         "maps are saved and scored beside the head's own.")
    epoch: Optional[Literal["best", "last"]] = Field(None, description="With --refine-with RUN_DIR: best "
                                                                       "(default) or last.")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N.")
    images_per_batch: Optional[Batch] = Field(None, description="Images whose point grids share decoder calls "
                                                                "(default: 1 on CPU, 8 on CUDA).")
    num_workers: Workers = Field(2, description="DataLoader workers reading the cache.")
    limit: Optional[PosInt] = Field(None, description="Only the first N images (default: all).")
    visualize: NonNegInt = Field(4, description="Pictures to draw (masks over the image; with --refine-with, "
                                                "also the head's map beside the refined one).")
    out: Optional[str] = Field(None, description=OUT_HELP.format(kind="everything"))
    overwrite: bool = Field(False, description=OVERWRITE_HELP)

    def generator_options(self) -> dict:
        """The upstream generator's options as given (None: the family's default)."""
        return {name: getattr(self, name) for name in ("points_per_side", "points_per_batch", "pred_iou_thresh",
                                                       "stability_score_thresh", "stability_score_offset",
                                                       "box_nms_thresh", "min_mask_region_area", "crop_n_layers")}
