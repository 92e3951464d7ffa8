"""What the commands' settings share: checked number, seed, device and split types, the model-type choice,
and help texts."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from samcache.choices import CLASS_SET_NAMES, check_device_name
from samcache.data.datasets import condition_names, dataset_names
from samcache.errors import SamcacheError
from samcache.evaluation.strategies import describe_strategies, strategy_names
from samcache.features.families import model_types
from samcache.pipeline.config import registry_choice


def no_bool(value):
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


def checked(check):
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


PosInt = Annotated[int, BeforeValidator(no_bool), Field(ge=1)]
NonNegInt = Annotated[int, BeforeValidator(no_bool), Field(ge=0)]
PosFloat = Annotated[float, BeforeValidator(no_bool), Field(gt=0, allow_inf_nan=False)]
MAX_SEED = 2**32 - 1  # every command's seed: numpy's and torch's generators both take it, and train-head's
#                      per-epoch seed (seed * 100_003 + epoch) stays inside torch's 64-bit range
Seed = Annotated[int, BeforeValidator(no_bool), Field(ge=0, le=MAX_SEED)]
Workers = Annotated[int, BeforeValidator(no_bool), Field(ge=0, le=64)]  # DataLoader processes
Batch = Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=4096)]
Epochs = Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=100_000)]
SPLIT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_split_name(name: str) -> None:
    if not isinstance(name, str) or not SPLIT_NAME.match(name):
        raise SamcacheError(f"a split name is letters, digits, '_', '.', '-' (like train, val, test), not {name!r}")


Device = Annotated[str, checked(check_device_name)]
SplitName = Annotated[str, checked(check_split_name)]
ClassSetName = Literal[CLASS_SET_NAMES]
ModelType = registry_choice(model_types)  # the registered families' types, read when a command runs
DatasetName = registry_choice(dataset_names)  # the registered datasets (data/datasets.py)
ConditionName = registry_choice(condition_names)
ModelTypeOrAuto = registry_choice(model_types, "auto")
PromptStrategy = registry_choice(strategy_names, last=("text",), describe=describe_strategies)  # text: SAM 3's noun phrases, not from the ground truth

CACHE_HELP = "Cache: a Zarr store (a .zarr folder or fsspec URL), or an exported .h5 file (read-only)."
ZARR_CACHE_HELP = "Cache to write: a Zarr store (a .zarr folder or fsspec URL; an .h5 export is read-only)."
OUT_HELP = "Run folder (default runs/<timestamp>-{kind}); must be new or empty unless --overwrite."
OVERWRITE_HELP = "Replace an earlier samcache run in --out (never a folder samcache did not make)."


def _some_runs(runs: list[str]) -> list[str]:
    if not runs:
        raise ValueError("give at least one run folder")
    return runs


RunFolders = Annotated[list[str], AfterValidator(_some_runs)]  # report's and sweep's RUN... arguments
