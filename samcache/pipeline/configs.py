"""Every command's settings: type, default, range, choices and help, in one place.

Choices come from the registries (model types, codecs, prompt strategies, class sets, ...),
never retyped. The CLI options, their --help, YAML validation and the saved config.yaml all
come from these classes (see ``config.py``).
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import BeforeValidator, Field, field_validator, model_validator

from samcache.evaluation.preload_modes import PRELOAD_MODES
from samcache.cache.hdf5 import COMPRESSIONS, DEFAULT_COMPRESSION
from samcache.cache.schema import CODECS, DEFAULT_CACHE, DEFAULT_CODEC, EMBEDDING_DTYPES
from samcache.cache.stores.hdf5 import SUFFIXES as H5_SUFFIXES
from samcache.data.labels import CLASS_SET_NAMES
from samcache.data.synth import parse_size
from samcache.errors import SamcacheError
from samcache.features.decoder import MULTIMASK_MODES
from samcache.features.family import ATTENTION_KINDS
from samcache.evaluation.clicks import FIRST_CLICK_MODES, NEXT_CLICK_RULES, STUFF_MODES
from samcache.features.device import PRECISION_CHOICES, check_device_name
from samcache.features.head import HEADS
from samcache.features.families import model_types

MODEL_TYPES = model_types()  # the registered families' types: the CLI's choices
from samcache.evaluation.prompts import MAX_PROMPT_POINTS, STRATEGIES
from samcache.pipeline.config import StageConfig, flag, register
from samcache.pipeline.head_checkpoints import KEEP_MODES


def _no_bool(value):
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def _checked(check):
    """A validator from a function that raises SamcacheError with a one-line reason."""

    def run(value):
        if value is None:
            return value
        try:
            check(value)
        except SamcacheError as exc:
            raise ValueError(str(exc)) from None
        return value

    return BeforeValidator(run)


PosInt = Annotated[int, BeforeValidator(_no_bool), Field(ge=1)]
NonNegInt = Annotated[int, BeforeValidator(_no_bool), Field(ge=0)]
PosFloat = Annotated[float, BeforeValidator(_no_bool), Field(gt=0, allow_inf_nan=False)]
MAX_SEED = 2**32 - 1  # every command's seed: numpy's and torch's generators both take it, and train-head's
#                      per-epoch seed (seed * 100_003 + epoch) stays inside torch's 64-bit range
Seed = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MAX_SEED)]
Workers = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=64)]  # DataLoader processes
Batch = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=4096)]
Epochs = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=100_000)]
SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_split_name(name: str) -> None:
    if not isinstance(name, str) or not SPLIT_NAME.match(name):
        raise SamcacheError(f"a split name is letters, digits, '_', '.', '-' (like train, val, test), not {name!r}")


def parse_dask_address(text: str) -> tuple[str, int | None]:
    """'local:N' -> ('local', N); 'tcp://host:port' (or tls://, ucx://, inproc://) -> (text, None)."""
    match = re.fullmatch(r"local:(\d+)", str(text))
    if match:
        n = int(match.group(1))
        if n < 1:
            raise SamcacheError("--dask local:N needs N >= 1")
        return "local", n
    if re.fullmatch(r"(tcp|tls|ucx|inproc)://\S+", str(text)):
        return str(text), None
    raise SamcacheError(f"--dask takes local:N (N workers on this machine) or a scheduler address like "
                        f"tcp://HOST:8786, not {text!r}")


def parse_resources(text: str | None) -> dict[str, float]:
    """'GPU=1,MEM=8e9' -> {'GPU': 1.0, 'MEM': 8e9}."""
    if not text:
        return {}
    try:
        pairs = [part.split("=") for part in str(text).split(",")]
        resources = {k.strip(): float(v) for k, v in pairs}
    except ValueError:
        raise SamcacheError(f"--resources expects NAME=AMOUNT[,NAME=AMOUNT], got {text!r}") from None
    if any(not k or v <= 0 for k, v in resources.items()):
        raise SamcacheError(f"--resources expects NAME=AMOUNT with AMOUNT > 0, got {text!r}")
    return resources


Device = Annotated[str, _checked(check_device_name)]
SplitName = Annotated[str, _checked(check_split_name)]
ClassSetName = Literal[CLASS_SET_NAMES]

CACHE_HELP = "Cache: a Zarr store (a .zarr folder or fsspec URL), or an exported .h5 file (read-only)."
ZARR_CACHE_HELP = "Cache to write: a Zarr store (a .zarr folder or fsspec URL; an .h5 export is read-only)."
OUT_HELP = "Run folder (default runs/<timestamp>-{kind}); must be new or empty unless --overwrite."
OVERWRITE_HELP = "Replace an earlier samcache run in --out (never a folder samcache did not make)."


@register
class ExtractConfig(StageConfig):
    SECTION = "extract"
    data: str = Field("data/cityscapes", description="Cityscapes root (holds leftImg8bit/ and gtFine/).")
    cache: str = Field(DEFAULT_CACHE, description=ZARR_CACHE_HELP)
    split: SplitName = Field("train", description="Split to extract (train, val, test, ...).")
    model_type: Literal[MODEL_TYPES] = Field("vit_h", description="SAM image encoder (tiny, sam3_tiny: RANDOM "
                                                                 "weights, tests).")
    checkpoint: Optional[str] = Field(None, description="Official checkpoint of --model-type: SAM 1 "
                                                        "sam_vit_{h,l,b}_*.pth, SAM 2.1 sam2.1_hiera_*.pt or SAM 3 "
                                                        "sam3.pt (none for tiny, sam3_tiny: RANDOM weights).")
    seed: Seed = Field(0, description="Seed of random-init weights (tiny, sam3_tiny).")
    dtype: Literal[EMBEDDING_DTYPES] = Field("float16", description="Stored embedding dtype.")
    precision: Literal[PRECISION_CHOICES] = Field(
        "auto", description="Encoder compute precision; auto: bf16 on CUDA, fp32 on the CPU (recorded in the "
                            "cache fingerprint).")
    batch_size: Optional[Batch] = Field(None, description="Images per encoder call (default: from free GPU "
                                                           "memory on CUDA, 4 on the CPU).")
    attention: Literal[ATTENTION_KINDS] = Field(
        "sdpa", description="Image-encoder attention: sdpa (fused kernel, same math) or upstream (reference).")
    compile: bool = Field(False, description="torch.compile the image encoder (the first batch pays for it).")
    num_workers: Workers = Field(2, description="DataLoader processes decoding PNGs (0: in the main process).")
    device: Device = Field("auto", description="auto, cpu, cuda or cuda:N.")
    codec: Optional[Literal[tuple(CODECS)]] = Field(
        None, description=f"Compression of a new split's arrays (default: {DEFAULT_CODEC}); an existing split keeps "
                          f"its own (another codec needs --rebuild).")
    rebuild: bool = Field(False, description="Recompute this split from scratch (deletes only its samcache arrays).")
    limit: Optional[PosInt] = Field(None, description="Only the first N images in sorted order (default: all).")
    dask: Optional[Annotated[str, _checked(parse_dask_address)]] = Field(
        None, description="Scale out: local:N workers on this machine, or a scheduler address tcp://HOST:8786.")
    resources: Optional[Annotated[str, _checked(parse_resources)]] = Field(
        None, description="Dask worker resources each task needs, e.g. GPU=1.")
    retries: NonNegInt = Field(2, description="Dask: times a failed task is retried.")

    @model_validator(mode="after")
    def _resources_need_dask(self):
        if self.resources and not self.dask:
            raise ValueError("--resources applies to Dask workers; give --dask too")
        return self


class DecodingConfig(StageConfig):
    """What zero-shot and clicks share: a cache split, the decoder's weights, batching, the run folder."""

    cache: str = Field(DEFAULT_CACHE, description=CACHE_HELP)
    split: SplitName = Field("val", description="Split to evaluate.")
    checkpoint: Optional[str] = Field(None, description="The cache's checkpoint (SAM 1 .pth, SAM 2.1 .pt or SAM 3 "
                                                        "sam3.pt; none for random-weight caches); the image "
                                                        "encoder never loads.")
    model_type: Optional[Literal[MODEL_TYPES]] = Field(None, description="Must match the cache (default: the cache's).")
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


TEXT_ONLY = ("compose", "score_threshold", "min_instance_area", "semantic_threshold", "phrases", "save_instances",
             "instance_threshold")
POINTS_ONLY = ("points", "negatives", "multimask")
INSTANCES_ONLY = ("score_threshold", "min_instance_area", "save_instances", "instance_threshold")


@register
class ZeroShotConfig(DecodingConfig):
    SECTION = "zero_shot"
    prompt: Literal[(*STRATEGIES, "text")] = Field(
        "random", description="Prompts per image. From the ground truth: random: one uniform point per class; "
                              "center: each class's point farthest from its boundary; per-instance: one center per "
                              "instance (things) or connected component (stuff); multi: --points positives and "
                              "--negatives points of other classes; box: each class's bounding box. text: the "
                              "class names as noun phrases (SAM 3 caches; no ground truth used to prompt).")
    points: Annotated[PosInt, Field(le=MAX_PROMPT_POINTS)] = Field(3, description="multi: positive points per class.")
    negatives: Annotated[NonNegInt, Field(le=MAX_PROMPT_POINTS)] = Field(
        3, description="multi: negative points from other classes.")
    multimask: Literal[MULTIMASK_MODES] = Field("best-score", description="Which of SAM's masks a prompt keeps.")
    save_predictions: bool = Field(False, description="The composed label maps as official-style labelIds PNGs.")
    compose: Literal["instances", "semantic-head"] = Field(  # evaluation.concepts.COMPOSE_MODES
        "instances", description="text: label maps from the kept instances (the SAM 3 paper's way) or from the "
                                 "semantic head's argmax.")
    score_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.5, description="text, instances: keep an instance when presence x score >= this.")
    min_instance_area: NonNegInt = Field(100, description="text, instances: and when its area >= this many pixels.")
    semantic_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.5, description="text, semantic-head: pixels whose best class probability is below this are unlabeled.")
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
        if self.prompt == "text" and self.compose == "instances" and flags(("semantic_threshold",)):
            raise ValueError("--semantic-threshold applies to --compose semantic-head only")
        if self.save_instances and self.compose != "instances":
            raise ValueError("--save-instances needs --compose instances")
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
    stuff: Literal[STUFF_MODES] = Field("components", description="Stuff classes and group regions: each "
                                                                  "connected component, or the whole class region.")


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


@register
class ReportConfig(StageConfig):
    SECTION = "report"
    runs: list[str] = Field(..., description="Run folders to compare (zero-shot, clicks, train-head, evaluate).",
                            json_schema_extra={"argument": True})
    out: Optional[str] = Field(None, description=OUT_HELP.format(kind="report"))
    overwrite: bool = Field(False, description=OVERWRITE_HELP)

    @field_validator("runs")
    @classmethod
    def _some(cls, runs: list[str]) -> list[str]:
        if not runs:
            raise ValueError("give at least one run folder")
        return runs


@register
class SynthConfig(StageConfig):
    SECTION = "synth"
    out_dir: str = Field(..., description="Folder to write.", json_schema_extra={"argument": True})
    train: NonNegInt = Field(24, description="Train images.")
    val: NonNegInt = Field(8, description="Val images.")
    test: NonNegInt = Field(0, description="Test images.")
    size: Annotated[str, _checked(parse_size)] = Field("2048x1024", description="WIDTHxHEIGHT of every image.")
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
    cache: str = Field(DEFAULT_CACHE, description="A format-1 cache to upgrade in place (attributes only).")


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
    size: Annotated[str, _checked(parse_size)] = Field("1024x512", description="WIDTHxHEIGHT of the synthetic images.")
    seed: Seed = Field(0, description="Seed of data, weights, prompts and head.")
    model_type: Literal[("auto", *MODEL_TYPES)] = Field(
        "auto", description="auto: vit_h if checkpoints/sam_vit_h_4b8939.pth exists, else tiny.")
    checkpoint: Optional[str] = Field(None, description="Checkpoint of --model-type (SAM 1 .pth, SAM 2.1 .pt or "
                                                        "SAM 3 sam3.pt); auto detects the type from it.")
    dtype: Literal[EMBEDDING_DTYPES] = Field("float16", description="Stored embedding dtype.")
    batch_size: Optional[Batch] = Field(None, description="Extraction batch size (default: automatic).")
    num_workers: Workers = Field(1, description="Extraction DataLoader workers.")
    prompts: Annotated[list[Literal[(*STRATEGIES, "text")]], Field(min_length=1)] = Field(
        ["random", "center"], description="Zero-shot prompt strategies (repeat the option); a SAM 3 model also "
                                          "runs text (the class names as prompts).",
        json_schema_extra={"flags": ("--prompt",)})
    multimask: Literal[MULTIMASK_MODES] = Field("best-score", description="Which of SAM's masks a prompt keeps.")
    max_clicks: Annotated[NonNegInt, Field(le=100)] = Field(5, description="Interactive clicks per object "
                                                                           "(0: skip the step).")
    click_images: PosInt = Field(3, description="Val images of the clicks step (per object, the slowest step on "
                                                "a CPU; the report marks it a subset).")
    classes: ClassSetName = Field("seed5", description="Class set.")
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
