"""Phase 2's settings: `samcache train-head` and `samcache evaluate` (semantic heads on cached features)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import BeforeValidator, Field, model_validator

from samcache.cache.schema import DEFAULT_CACHE
from samcache.choices import HEADS, KEEP_MODES
from samcache.evaluation.preload_modes import PRELOAD_MODES
from samcache.pipeline.config import StageConfig, register
from samcache.pipeline.configs.fields import (CACHE_HELP, OUT_HELP, OVERWRITE_HELP, Batch, ClassSetName, Device, Epochs,
                                              NonNegInt, PosFloat, PosInt, Seed, SplitName, Workers)


def _preload_off(value):
    return "off" if value is False else value  # YAML 1.1 reads `preload: off` as false


@register
class HeadConfig(StageConfig):
    SECTION = "train_head"
    RESUMABLE: ClassVar[tuple[str, ...]] = ("epochs", "num_workers", "device", "preload", "visualize",
                                            "save_predictions", "keep", "allow_train_growth", "resume", "out",
                                            "overwrite")
    CLI_ONLY: ClassVar[tuple[str, ...]] = ("resume", "allow_train_growth")
    cache: str = Field(DEFAULT_CACHE, description=CACHE_HELP)
    train_split: SplitName = Field("train", description="Split to train on.")
    val_split: SplitName = Field("val", description="Split to evaluate every epoch.")
    classes: ClassSetName = Field("seed5", description="Class set.")
    epochs: Epochs = Field(5, description="Total epochs (with --resume: at least those already run).")
    batch_size: Batch = Field(16, description="Images per step.")
    lr: PosFloat = Field(1e-3, description="Adam learning rate.")
    head: Literal[HEADS] = Field("main", description="main: convs on the 64x64 map (any cache); multiscale: "
                                                      "top-down fusion with SAM 2.1's high-resolution maps.")
    width: Annotated[PosInt, Field(le=4096)] = Field(256, description="Channels of the head's conv layers.")
    num_workers: Workers = Field(2, description="DataLoader workers when not preloaded.")
    preload: Annotated[Literal[PRELOAD_MODES], BeforeValidator(_preload_off)] = Field(
        "auto", description="Keep the splits in memory: auto (GPU, else RAM, if they fit), ram, gpu or off.")
    flip: bool = Field(False, description="Random horizontal flips of embedding + target.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="Training forward and loss: fp32, or bf16 "
                                                                    "autocast (for GPUs; weights stay fp32).")
    seed: Seed = Field(0, description="Seed of initialisation, order and flips.")
    out: Optional[str] = Field(None, description=OUT_HELP.format(kind="head"))
    overwrite: bool = Field(False, description=OVERWRITE_HELP)
    resume: Optional[str] = Field(None, description="Continue RUN_DIR from its last good epoch (its config.yaml).")
    allow_train_growth: Optional[bool] = Field(
        None, description="With --resume: train the remaining epochs on a train split that has grown since the run "
                          "began (refused without it; metrics.csv records each epoch's train images).")
    keep: Literal[KEEP_MODES] = Field(
        "all", description="Checkpoints to keep: all (head_epoch_N.pt of every epoch), best (the best epoch by val "
                           "mIoU, and the last, which --resume continues from) or last.")
    save_predictions: bool = Field(False, description="Official-style labelIds PNGs of the last epoch.")
    visualize: NonNegInt = Field(4, description="Overlays of the last epoch.")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N.")
    limit: Optional[PosInt] = Field(None, description="Only the first N train images (default: all).")

    @model_validator(mode="after")
    def _growth_needs_resume(self):
        if self.allow_train_growth and not self.resume:
            raise ValueError("--allow-train-growth applies to --resume only")
        return self

    @classmethod
    def from_cli(cls, config_file, flags: dict) -> "HeadConfig":
        from samcache.pipeline.resume import resume_config  # train-head --resume reads the run's own config

        if flags.get("resume"):
            return resume_config(cls, config_file, flags)
        from samcache.pipeline.config import resolve

        return resolve(cls, config_file, **flags)


@register
class EvaluateConfig(StageConfig):
    SECTION = "evaluate"
    head: str = Field(..., description="A head checkpoint, RUN_DIR/head_epoch_N.pt, or a head run folder RUN_DIR "
                                       "(its epoch chosen by --epoch).")
    epoch: Optional[Literal["best", "last"]] = Field(
        None, description="With --head RUN_DIR: best (the epoch with the best val mIoU, or the last when --keep "
                           "did not keep that one; default) or last.")
    cache: Optional[str] = Field(None, description=CACHE_HELP + " Default: the cache the head was trained on.")
    split: SplitName = Field("val", description="Split to evaluate.")
    batch_size: Batch = Field(8, description="Images per forward pass.")
    num_workers: Workers = Field(2, description="DataLoader workers.")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N.")
    out: Optional[str] = Field(None, description="Run folder (default RUN_DIR/eval-<split>-epochN).")
    overwrite: bool = Field(False, description=OVERWRITE_HELP)
    save_predictions: bool = Field(False, description="Official-style labelIds PNGs.")
    visualize: NonNegInt = Field(0, description="Overlays to draw.")
