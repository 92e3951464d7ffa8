"""Stage 1 on Dask: img/s with 1 against 2 local workers (tiny model, CPU), in one run.

On this 2-core machine the workers share the cores: one worker runs the encoder on 2 threads,
two workers on 1 thread each. The ratio is bounded by 2 and, for a compute-bound encoder on
shared cores, sits near 1; what two processes buy here is overlap of PNG decode and writes
with the other worker's encoder. Cluster start-up (process spawn + model load) is included.
"""

from __future__ import annotations

import shutil

from benchmarks.common import OUT, synth_data, timer
from samcache.pipeline.dask_extract import start_cluster
from samcache.pipeline.configs import ExtractConfig
from samcache.pipeline.extract import extract

N_IMAGES = 16


def run() -> list[dict]:
    data = synth_data(N_IMAGES, 0)
    rows, speeds = [], {}
    for workers in (1, 2):
        cache = OUT / f"bench_dask_{workers}.zarr"
        shutil.rmtree(cache, ignore_errors=True)
        result = extract(ExtractConfig(data=str(data), cache=str(cache), split="train", model_type="tiny",
                                       device="cpu", batch_size=2, dtype="float16", dask=f"local:{workers}"),
                         progress=False)
        speeds[workers] = result.img_per_s
        rows.append({"benchmark": "dask", "metric": f"extract --dask local:{workers} ({N_IMAGES} imgs, start-up incl.)",
                     "value": f"{result.img_per_s:.2f} img/s"})
    with timer() as t:
        client, cluster, _ = start_cluster("local:2", {})
        client.close()
        cluster.close()
    rows.append({"benchmark": "dask", "metric": "LocalCluster(2) start + stop", "value": f"{t['s']:.1f} s"})
    rows.append({"benchmark": "dask", "metric": "ratio 2 workers / 1 worker (bound: 2 cores)",
                 "value": f"{speeds[2] / speeds[1]:.2f}"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
