"""The other commands' settings: report, synth, export, import, upgrade, info, delete-split, demo, verify."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator

from samcache.cache.schema import COMPRESSIONS, DEFAULT_CACHE, DEFAULT_COMPRESSION, EMBEDDING_DTYPES, H5_SUFFIXES
from samcache.choices import MULTIMASK_MODES, parse_size
from samcache.pipeline.config import StageConfig, register
from samcache.data.datasets import DEFAULT_DATASET
from samcache.pipeline.configs.fields import (CACHE_HELP, OUT_HELP, OVERWRITE_HELP, Batch, ClassSetName, DatasetName,
                                              Device, Epochs, ModelTypeOrAuto, NonNegInt, PosInt, PromptStrategy, Seed,
                                              RunFolders, SplitName, Workers, checked)


@register
class ReportConfig(StageConfig):
    SECTION = "report"
    runs: RunFolders = Field(..., description="Run folders to compare (zero-shot, clicks, train-head, evaluate).",
                            json_schema_extra={"argument": True})
    out: Optional[str] = Field(None, description=OUT_HELP.format(kind="report"))
    overwrite: bool = Field(False, description=OVERWRITE_HELP)
    gallery: NonNegInt = Field(50, description="Images in report.html's gallery: those with the lowest per-image "
                                               "score of the first run first (0: no gallery).")


@register
class SynthConfig(StageConfig):
    SECTION = "synth"
    out_dir: str = Field(..., description="Folder to write.", json_schema_extra={"argument": True})
    dataset: DatasetName = Field(DEFAULT_DATASET, description="Whose official layout and label ids to write (acdc: "
                                                              "scenes go round fog, night, rain, snow).")
    train: NonNegInt = Field(24, description="Train images.")
    val: NonNegInt = Field(8, description="Val images.")
    test: NonNegInt = Field(0, description="Test images.")
    size: Annotated[str, checked(parse_size)] = Field("2048x1024", description="WIDTHxHEIGHT of every image (gta5: "
                                                                               "every third image is 3/4 of it).")
    seed: Seed = Field(0, description="Scene seed.")
    overwrite: bool = Field(False, description="Replace synthetic data written with other counts, size or seed "
                                               "(never a folder samcache did not write).")


@register
class ExportConfig(StageConfig):
    SECTION = "export"
    cache: str = Field(..., description="Zarr cache to export.", json_schema_extra={"argument": True})
    out: str = Field(..., description="The HDF5 file to write (.h5).", json_schema_extra={"argument": True})
    split: Optional[list[SplitName]] = Field(None, description="Splits to export (repeat; default: all).")
    compression: Literal[tuple(COMPRESSIONS)] = Field(DEFAULT_COMPRESSION, description="HDF5 filter (both ship "
                                                                                         "with h5py).")
    overwrite: bool = Field(False, description="Replace an earlier samcache export at OUT (never another file).")

    @field_validator("out")
    @classmethod
    def _h5(cls, out: str) -> str:
        if not out.lower().endswith(H5_SUFFIXES):
            raise ValueError(f"the output file must end in {' or '.join(H5_SUFFIXES)}")
        return out


@register
class ImportConfig(StageConfig):
    SECTION = "import"
    h5: str = Field(..., description="An HDF5 file written by `samcache export`.", json_schema_extra={"argument": True})
    cache: str = Field(..., description="New Zarr cache path.", json_schema_extra={"argument": True})


@register
class UpgradeConfig(StageConfig):
    SECTION = "upgrade"
    cache: str = Field(DEFAULT_CACHE, description="A format-1 or format-2 cache to upgrade to format 3 in place "
                                                  "(attributes only).")


@register
class InfoConfig(StageConfig):
    SECTION = "info"
    cache: str = Field(DEFAULT_CACHE, description=CACHE_HELP)


@register
class DeleteSplitConfig(StageConfig):
    SECTION = "delete_split"
    cache: str = Field(DEFAULT_CACHE, description="The Zarr cache holding the split.")
    split: SplitName = Field(..., description="The split to delete (its samcache arrays; nothing else).")
    yes: bool = Field(False, description="Really delete it (without: say what would be deleted, and stop).")


@register
class DemoConfig(StageConfig):
    SECTION = "demo"
    out: str = Field("runs/demo", description="Folder for data, cache, runs and report.")
    train: PosInt = Field(24, description="Synthetic train images.")
    val: PosInt = Field(8, description="Synthetic val images.")
    size: Annotated[str, checked(parse_size)] = Field("1024x512", description="WIDTHxHEIGHT of the synthetic images.")
    seed: Seed = Field(0, description="Seed of data, weights, prompts and head.")
    model_type: ModelTypeOrAuto = Field(
        "auto", description="auto: vit_h if checkpoints/sam_vit_h_4b8939.pth exists, else tiny.")
    checkpoint: Optional[str] = Field(None, description="Checkpoint of --model-type (SAM 1 .pth, SAM 2.1 .pt or "
                                                        "SAM 3 sam3.pt); auto detects the type from it.")
    dtype: Literal[EMBEDDING_DTYPES] = Field("float16", description="Stored embedding dtype.")
    batch_size: Optional[Batch] = Field(None, description="Extraction batch size (default: automatic).")
    num_workers: Workers = Field(1, description="Extraction DataLoader workers.")
    prompts: Annotated[list[PromptStrategy], Field(min_length=1)] = Field(
        ["random", "center"], description="Zero-shot prompt strategies (repeat the option); a SAM 3 model also "
                                          "runs text (the class names as prompts).",
        json_schema_extra={"flags": ("--prompt",)})
    multimask: Literal[MULTIMASK_MODES] = Field("best-score", description="Which of SAM's masks a prompt keeps.")
    max_clicks: Annotated[NonNegInt, Field(le=100)] = Field(5, description="Interactive clicks per object "
                                                                           "(0: skip the step).")
    click_images: PosInt = Field(3, description="Val images of the clicks step (per object, the slowest step on "
                                                "a CPU; the report marks it a subset).")
    classes: ClassSetName = Field("seed5", description="Class set.")
    points_per_side: Annotated[NonNegInt, Field(le=64)] = Field(
        4, description="The last step's automatic mask generator grid (SAM's masks refining the head; 0: skip "
                        "the step). Random weights: its IoU and stability thresholds are 0, or it keeps no mask.")
    epochs: Epochs = Field(6, description="Head training epochs.")
    head_batch_size: Batch = Field(8, description="Head batch size.")
    visualize: NonNegInt = Field(2, description="Overlays per run.")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N.")


@register
class VerifyConfig(StageConfig):
    SECTION = "verify"
    cache: str = Field(DEFAULT_CACHE, description="Cache: a Zarr store path (or fsspec URL), or an exported .h5 file.")
    split: Optional[SplitName] = Field(None, description="Split to check (default: every split).")
    repair: bool = Field(False, description="Mark the damaged rows not done, so that a plain `samcache extract` "
                                            "re-encodes them (Zarr only; refused while the split is extracted).")
