"""The cache as one HDF5 file: export time, size (gzip, lzf) against the Zarr store (zstd), and the
time to read every image's features back, through plain zarr and plain h5py, in one run."""

from __future__ import annotations

import shutil
import time

import h5py
import zarr

from benchmarks.common import OUT, synth_data
from samcache.cache.hdf5 import export_h5
from samcache.pipeline.configs import ExtractConfig
from samcache.pipeline.extract import extract

IMAGES = 16


def _cache() -> str:
    data = synth_data(IMAGES, 0)
    cache = OUT / "bench_hdf5.zarr"
    if not (cache / "train").exists():
        shutil.rmtree(cache, ignore_errors=True)
        extract(ExtractConfig(data=str(data), cache=str(cache), split="train", model_type="tiny", device="cpu",
                              num_workers=1), progress=False)
    return str(cache)


def _zarr_bytes(cache: str) -> int:
    group = zarr.open_group(cache, mode="r")["train"]
    return sum(int(a.nbytes_stored()) for _, a in group.arrays())


def run() -> list[dict]:
    cache = _cache()
    rows = [{"benchmark": "hdf5", "metric": "zarr (zstd) MiB/image",
             "value": f"{_zarr_bytes(cache) / 2**20 / IMAGES:.2f}"}]
    t0 = time.perf_counter()
    group = zarr.open_group(cache, mode="r")["train"]
    for i in range(IMAGES):
        group["embeddings"][i]
    zarr_read = IMAGES / (time.perf_counter() - t0)
    for compression in ("gzip", "lzf"):
        out = OUT / f"bench_{compression}.h5"
        t0 = time.perf_counter()
        result = export_h5(cache, str(out), compression=compression, overwrite=True)
        seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        with h5py.File(out, "r") as f:
            for i in range(IMAGES):
                f["train/embeddings"][i]
        read = IMAGES / (time.perf_counter() - t0)
        rows += [{"benchmark": "hdf5", "metric": f"{compression}: MiB/image", "value":
                  f"{result['bytes'] / 2**20 / IMAGES:.2f}"},
                 {"benchmark": "hdf5", "metric": f"{compression}: export img/s", "value": f"{IMAGES / seconds:.1f}"},
                 {"benchmark": "hdf5", "metric": f"{compression}: read embeddings img/s (h5py) vs zarr",
                  "value": f"{read:.0f} vs {zarr_read:.0f}"}]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
