"""The GPU benchmark's helpers run on the CPU too (the GPU machine is lent rarely: its script must not break)."""

import numpy as np
import zarr

from benchmarks.bench_gpu import replicated_cache
from samcache.cache.reader import open_cache


def test_replicated_cache_cycles_the_source_rows(cache16, tmp_path):
    target = replicated_cache(cache16, tmp_path / "rep.zarr", train=5, val=2)
    source = zarr.open_group(str(cache16), mode="r")["train"]
    copy = zarr.open_group(str(target), mode="r")
    n = source["embeddings"].shape[0]
    for k in range(5):
        assert np.array_equal(copy["train"]["embeddings"][k], source["embeddings"][k % n])
        assert np.array_equal(copy["train"]["labels"][k], source["labels"][k % n])
    assert copy["val"]["done"][:].all() and open_cache(str(target)).split("train").require_complete() == list(range(5))
