"""Stage 1's settings: `samcache extract`."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from samcache.cache.schema import CODECS, DEFAULT_CACHE, DEFAULT_CODEC, EMBEDDING_DTYPES
from samcache.choices import ATTENTION_KINDS, PRECISION_CHOICES
from samcache.data.datasets import DATASETS, DEFAULT_DATASET
from samcache.pipeline.config import StageConfig, flag, register
from samcache.pipeline.configs.fields import (ZARR_CACHE_HELP, Batch, ConditionName, DatasetName, Device, ModelType,
                                              NonNegInt, PosInt, Seed, SplitName, Workers, checked)
from samcache.pipeline.dask_options import (check_gres, check_walltime, memory_bytes, one_word, parse_dask_address,
                                            parse_resources, sbatch_option)

Word = Annotated[str, checked(one_word)]


@register
class ExtractConfig(StageConfig):
    SECTION = "extract"
    dataset: DatasetName = Field(DEFAULT_DATASET, description="The dataset and its layout (recorded in the cache).")
    condition: Optional[ConditionName] = Field(None, description="Datasets with conditions (acdc): one "
                                                                   "condition, or all (default).")
    data: str = Field(None, description="The dataset's root folder, in its official layout (default: "
                                        "data/<dataset>, e.g. data/cityscapes).",
                      validate_default=False)
    cache: str = Field(DEFAULT_CACHE, description=ZARR_CACHE_HELP)
    split: SplitName = Field("train", description="Split to extract (train, val, test, ...).")
    model_type: ModelType = Field("vit_h", description="SAM image encoder (tiny, sam3_tiny: RANDOM "
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
    dask: Optional[Annotated[str, checked(parse_dask_address)]] = Field(
        None, description="Scale out: local:N workers on this machine, slurm:N SLURM jobs (one worker each, "
                          "through dask-jobqueue), or a scheduler address tcp://HOST:8786.")
    resources: Optional[Annotated[str, checked(parse_resources)]] = Field(
        None, description="Dask worker resources each task needs, e.g. GPU=1 (slurm:N workers advertise them).")
    retries: NonNegInt = Field(2, description="Dask: times a failed task is retried.")
    # --dask slurm:N: each job's sbatch settings (dask-jobqueue's jobqueue.yaml fills what these leave unset)
    slurm_queue: Optional[Word] = Field(None, description="slurm:N: partition of the jobs (sbatch -p; default: "
                                                          "the cluster's).")
    slurm_account: Optional[Word] = Field(None, description="slurm:N: account charged (sbatch -A).")
    slurm_walltime: Annotated[str, checked(check_walltime)] = Field(
        "01:00:00", description="slurm:N: each job's time limit (sbatch -t), HH:MM:SS or D-HH:MM:SS.")
    slurm_memory: Annotated[str, checked(memory_bytes)] = Field(
        "16GB", description="slurm:N: each job's memory (sbatch --mem; 1GB = 1024MB, as in SLURM), also its "
                            "worker's memory limit.")
    slurm_cores: Annotated[PosInt, Field(le=1024)] = Field(
        4, description="slurm:N: CPUs per job (sbatch --cpus-per-task); its worker runs one task at a time, "
                       "with this many torch threads.")
    slurm_gres: Optional[Annotated[str, checked(check_gres)]] = Field(
        None, description="slurm:N: generic resources per job (sbatch --gres), e.g. gpu:1; with --resources "
                          "GPU=1 encoder tasks run only on these workers.")
    slurm_directives: list[Annotated[str, checked(sbatch_option)]] = Field(
        [], description="slurm:N: one more #SBATCH option per job, e.g. --qos=high (repeat the option).",
        json_schema_extra={"flags": ("--slurm-directive",)})
    slurm_python: Optional[Word] = Field(None, description="slurm:N: the Python on the compute nodes that has "
                                                           "samcache (default: the one running this command).")
    slurm_interface: Optional[Word] = Field(None, description="slurm:N: network interface the scheduler and "
                                                              "workers use, e.g. ib0 (default: this host's "
                                                              "address).")
    slurm_wait: Annotated[PosInt, Field(le=7 * 24 * 3600)] = Field(
        600, description="slurm:N: seconds to wait for the first job's worker to join; then the jobs are "
                         "cancelled.")

    @model_validator(mode="before")
    @classmethod
    def _data_of_dataset(cls, values):
        """--data defaults to data/<dataset>."""
        if isinstance(values, dict) and values.get("data") is None:
            values = {**values, "data": f"data/{values.get('dataset') or DEFAULT_DATASET}"}
        return values

    @model_validator(mode="after")
    def _condition_of_dataset(self):
        conditions = DATASETS[self.dataset].conditions if self.dataset in DATASETS else ()
        if self.condition is not None and self.condition not in conditions:
            raise ValueError(f"--condition {self.condition} does not apply to --dataset {self.dataset}"
                             + (f" (its conditions: {', '.join(conditions)})" if conditions else " (it has none)"))
        return self

    @model_validator(mode="after")
    def _resources_need_dask(self):
        if self.resources and not self.dask:
            raise ValueError("--resources applies to Dask workers; give --dask too")
        if not str(self.dask or "").startswith("slurm:"):
            fields = type(self).model_fields
            given = [name for name, field in fields.items()
                     if name.startswith("slurm_") and getattr(self, name) != field.default]
            if given:
                raise ValueError(f"{flag(given[0])} applies to SLURM jobs; give --dask slurm:N too")
        return self
