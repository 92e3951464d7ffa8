"""Phase 1's settings: `samcache zero-shot` and `samcache clicks` (prompts decoded from the cache)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator

from samcache.cache.schema import DEFAULT_CACHE
from samcache.choices import (COMPOSE_MODES, FIRST_CLICK_MODES, MAX_PROMPT_POINTS, MULTIMASK_MODES, NEXT_CLICK_RULES,
                              STUFF_MODES)
from samcache.pipeline.config import StageConfig, flag, register
from samcache.pipeline.configs.fields import (CACHE_HELP, OUT_HELP, OVERWRITE_HELP, Batch, ClassSetName, Device,
                                              ModelType, NonNegInt, PosInt, PromptStrategy, Seed, SplitName,
                                              Workers)


class DecodingConfig(StageConfig):
    """What zero-shot and clicks share: a cache split, the decoder's weights, batching, the run folder."""

    cache: str = Field(DEFAULT_CACHE, description=CACHE_HELP)
    split: SplitName = Field("val", description="Split to evaluate.")
    checkpoint: Optional[str] = Field(None, description="The cache's checkpoint (SAM 1 .pth, SAM 2.1 .pt or SAM 3 "
                                                        "sam3.pt; none for random-weight caches); the image "
                                                        "encoder never loads.")
    model_type: Optional[ModelType] = Field(None, description="Must match the cache (default: the cache's).")
    classes: ClassSetName = Field("seed5", description="Class set (its evaluated classes are prompted).")
    seed: Seed = Field(0, description="Seed of random prompts and clicks.")
    visualize: NonNegInt = Field(4, description="Pictures to draw.")
    out: Optional[str] = Field(None, description=OUT_HELP.format(kind="<command>-..."))
    overwrite: bool = Field(False, description=OVERWRITE_HELP)
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N.")
    images_per_batch: Optional[Batch] = Field(None, description="Images whose prompts share decoder calls "
                                                                 "(default: 1 on CPU, 8 on CUDA).")
    num_workers: Workers = Field(2, description="DataLoader workers reading the cache and preparing prompts.")
    limit: Optional[PosInt] = Field(None, description="Only the first N images (default: all).")


FUSED_ONLY = ("fused_presence", "fused_instances", "fused_semantic", "fused_threshold")
TEXT_ONLY = ("compose", "score_threshold", "min_instance_area", "semantic_threshold", "phrases", "phrase_set",
             "save_instances", "keep_scores", "keep_scores_from",
             "instance_threshold") + FUSED_ONLY
POINTS_ONLY = ("points", "negatives", "multimask")
INSTANCES_ONLY = ("min_instance_area", "save_instances", "instance_threshold")


@register
class ZeroShotConfig(DecodingConfig):
    SECTION = "zero_shot"
    prompt: PromptStrategy = Field(
        "random", description="Prompts per image. From the ground truth: {choices}. text: the class names as noun "
                              "phrases (SAM 3 caches; no ground truth used to prompt).")
    points: Annotated[PosInt, Field(le=MAX_PROMPT_POINTS)] = Field(3, description="multi: positive points per class.")
    negatives: Annotated[NonNegInt, Field(le=MAX_PROMPT_POINTS)] = Field(
        3, description="multi: negative points from other classes.")
    multimask: Literal[MULTIMASK_MODES] = Field("best-score", description="Which of SAM's masks a prompt keeps.")
    save_predictions: bool = Field(False, description="The composed label maps as official-style labelIds PNGs.")
    compose: Literal[COMPOSE_MODES] = Field(
        "instances", description="text: label maps from the kept instances (the SAM 3 paper's way), from the "
                                 "semantic head's argmax, or fused (SegEarth-OV3: per class max(instance "
                                 "probability x score, semantic sigmoid) x presence, then argmax).")
    score_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.5, description="text, instances and fused: keep an instance when presence x score >= this "
                         "(SegEarth-OV3 uses 0.3).")
    min_instance_area: NonNegInt = Field(100, description="text, instances: and when its area >= this many pixels.")
    semantic_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.5, description="text, semantic-head: pixels whose best class probability is below this are unlabeled.")
    fused_presence: bool = Field(True, description="text, fused: multiply each phrase's map by its presence score.")
    fused_instances: bool = Field(True, description="text, fused: the instance term (max over kept instances of "
                                                    "mask probability x score).")
    fused_semantic: bool = Field(True, description="text, fused: the semantic term (the semantic head's sigmoid).")
    fused_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.0, description="text, fused: pixels whose best class score is below this are unlabeled (0: every pixel "
                         "is labelled, as SegEarth-OV3).")
    keep_scores: bool = Field(False, description="text: store per image what every compose rule needs (per "
                                                 "phrase presence and semantic logits, instances with scores and "
                                                 "mask logits), compressed, in the run's scores/: `samcache "
                                                 "sweep` scores other settings from it without the model.")
    keep_scores_from: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.1, description="text, --keep-scores: store instances from this presence x score on (a sweep's "
                         "--score-threshold must be at least this).")
    phrase_set: str = Field("class_names", description="text: the phrases YAML prompting each class (a class's "
                                                       "score is the max over its phrases): a file, or a set "
                                                       "shipped in configs/phrases/ (class_names, "
                                                       "segearth_ov3_cityscapes).")
    phrases: list[str] = Field([], description="text: an extra noun phrase for a class, as CLASS=PHRASE "
                                               "(repeat the option).", json_schema_extra={"flags": ("--phrase",)})
    save_instances: bool = Field(False, description="text, instances: cityscapesScripts' instance-level result "
                                                    "files (mask PNGs, label id, confidence) for AP.")
    instance_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.05, description="text, --save-instances: list instances from this presence x score on (AP ranks "
                          "them by confidence and wants low ones too); the label map keeps --score-threshold.")

    @field_validator("phrases", mode="before")
    @classmethod
    def _phrase_mapping(cls, value):
        """A run's phrases.yaml mapping ({class: [phrases]}) is accepted as well as ["CLASS=PHRASE", ...]."""
        if isinstance(value, dict):
            return [f"{name}={phrase}" for name, ps in value.items() for phrase in ([ps] if isinstance(ps, str) else ps)]
        return value

    @model_validator(mode="after")
    def _text_options(self):
        """An option that does not apply to the chosen prompts is refused when it differs from its default
        (a saved config.yaml, which lists every option, still replays)."""
        defaults = type(self).model_fields
        changed = [name for name in TEXT_ONLY + POINTS_ONLY if getattr(self, name) != defaults[name].default]
        flags = lambda names: ", ".join("--phrase" if n == "phrases" else flag(n)  # noqa: E731
                                        for n in changed if n in names)
        if self.prompt != "text" and flags(TEXT_ONLY):
            raise ValueError(f"{flags(TEXT_ONLY)} applies to --prompt text only")
        if self.prompt == "text" and flags(POINTS_ONLY):
            raise ValueError(f"{flags(POINTS_ONLY)} applies to point and box prompts, not --prompt text")
        if self.prompt == "text" and self.compose != "instances" and flags(INSTANCES_ONLY):
            raise ValueError(f"{flags(INSTANCES_ONLY)} applies to --compose instances only")
        if self.prompt == "text" and self.compose == "semantic-head" and flags(("score_threshold",)):
            raise ValueError("--score-threshold applies to --compose instances and fused only")
        if self.prompt == "text" and self.compose != "semantic-head" and flags(("semantic_threshold",)):
            raise ValueError("--semantic-threshold applies to --compose semantic-head only")
        if self.prompt == "text" and self.compose != "fused" and flags(FUSED_ONLY):
            raise ValueError(f"{flags(FUSED_ONLY)} applies to --compose fused only")
        if self.compose == "fused" and not (self.fused_instances or self.fused_semantic):
            raise ValueError("--compose fused needs the instance term or the semantic term (or both): "
                             "--no-fused-instances and --no-fused-semantic leave nothing to fuse")
        if self.save_instances and self.compose != "instances":
            raise ValueError("--save-instances needs --compose instances")
        if not self.keep_scores and flags(("keep_scores_from",)):
            raise ValueError("--keep-scores-from applies with --keep-scores only")
        if self.keep_scores and self.compose != "semantic-head" and self.keep_scores_from > self.score_threshold:
            raise ValueError(f"--keep-scores-from {self.keep_scores_from} is above --score-threshold "
                             f"{self.score_threshold}: the run's own setting could not be scored from its stored "
                             f"scores")
        if not self.save_instances and flags(("instance_threshold",)):
            raise ValueError("--instance-threshold applies with --save-instances only")
        return self


@register
class ClicksConfig(DecodingConfig):
    SECTION = "clicks"
    max_clicks: Annotated[PosInt, Field(le=100)] = Field(20, description="Clicks per object.")
    first_click: Literal[FIRST_CLICK_MODES] = Field(
        "center", description="Click 1: the point farthest from the boundary, or a uniform point inside.")
    next_click: Literal[NEXT_CLICK_RULES] = Field(
        "ritm", description="Clicks 2..: ritm (RITM's clicker, as published NoC tables: the error pixel farthest "
                            "from any boundary), or largest-region (the largest error region, at its farthest point).")
    first_mask: Literal["best-score", "oracle"] = Field(
        "best-score", description="Which of SAM's masks click 1 keeps: SAM's score, or the best against the "
                                  "ground truth (ORACLE).")
    mask_input: bool = Field(True, description="Feed the previous click's low-res logits back as mask_input.")
    min_area: NonNegInt = Field(100, description="Objects smaller than this many pixels are skipped.")
    save_predictions: bool = Field(False, description="Each image's objects after their last click as one label map "
                                                      "(official-style labelIds PNGs; larger objects first, smaller "
                                                      "ones on top).")
    stuff: Literal[STUFF_MODES] = Field("components", description="Stuff classes and group regions: each "
                                                                  "connected component, or the whole class region.")
