"""`make bench-gpu`: samcache on one GPU, row by row, every row written to --results the moment it ends.

Synthetic 2048x1024 Cityscapes-format data (a few unique scenes drawn in parallel, replicated by hard
links, so PNG decode is real) and random-init ViT-H saved as an official-format checkpoint with random
*non-zero* relative-position tables (zeros would leave the bf16 attention-bias path untested). Speed
does not depend on the weight values; accuracy numbers from these weights mean nothing. Rows, most
important first (a row that fails is marked and the rest run; --deadline skips what would not finish):
  correctness   bf16 + SDPA encoder vs upstream fp32 (TF32 off) on one full-size image: max relative
                difference of the embeddings, and IoU between the masks decoded from each;
  extract       samcache extract end to end (PNG decode, encoder, Zarr write), bf16, automatic batch;
  zero-shot     per-instance prompts/s from that cache; clicks: clicks/s (SAM paper protocol);
  head          one epoch over GPU-preloaded images, then evaluation of the val split;
  everything    SAM's automatic mask generator from the cache against upstream's generate() (bench_everything);
  cap 10 GiB    the same stages under torch.cuda.set_per_process_memory_fraction (the seed's RTX 3080),
                and where --preload auto puts the full Cityscapes train+val there (10.7 GiB: not the GPU);
  compile       encoder eager vs torch.compile at one batch shape, both after warm-up; compile s apart;
  ceiling, sam2.1 extract, seed's way (SamPredictor loop, fp32, batch 1).
Every row records its peak GPU memory. ``--smoke``: toy size, tiny model, CPU allowed (checks this file).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import OUT, machine
from benchmarks.gpu_data import random_checkpoint, replicate_data, replicated_cache
from benchmarks.gpu_results import Results, Row, Runner
from samcache.data.cityscapes import list_images
from samcache.cache.reader import open_cache

RESULTS = Path(__file__).parent / "RESULTS.md"
CAP_BYTES = 10 * 2**30  # the seed's RTX 3080 has 10 GB
CITYSCAPES = (2975, 500)  # train, val images: the full-size preload decision
QUICK_DEADLINE_S = 285.0  # --quick ends within 5 minutes: what would not fit is marked skipped


@dataclass(frozen=True)
class Params:
    model: str = "vit_h"
    sam2: str = "sam2.1_hiera_l"
    size: tuple[int, int] = (2048, 1024)
    unique: int = 8  # synthetic scenes drawn; the rest are hard links to them
    images: int = 1024  # extracted end to end in the main extract row (16+ batches: not start-up alone)
    zero_shot_images: int = 256
    click_images: int = 32
    max_clicks: int = 5
    train: int = 1024  # head split (rows cycle through the extracted ones)
    val: int = 200
    head_batch: int = 32
    capped_images: int = 64  # extract / zero-shot under the 10 GiB cap
    sam2_images: int = 64
    seed_images: int = 6
    compile_batch: int = 16
    everything: tuple[int, int, int] = (8, 8, 32)  # images, images per batch, points_per_side
    scale: float = 1.0  # row time estimates (seconds on one H100) are multiplied by this


MODES = {
    "quick": Params(),
    "full": Params(unique=16, images=2048, zero_shot_images=500, click_images=64, train=2975, val=500,
                   capped_images=128, sam2_images=128, seed_images=12, everything=(32, 8, 32), scale=2.0),
    "smoke": Params(model="tiny", sam2="sam2.1_hiera_t", size=(512, 256), unique=2, images=8, zero_shot_images=4,
                    click_images=2, max_clicks=2, train=12, val=4, head_batch=4, capped_images=4, sam2_images=4,
                    seed_images=2, compile_batch=2, everything=(2, 2, 2), scale=0.0),
}


@contextlib.contextmanager
def memory_cap(device: torch.device, cap_bytes: int):
    """torch.cuda.set_per_process_memory_fraction for the block (a no-op on a CPU)."""
    if device.type != "cuda":
        yield
        return
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total), device)
    try:
        yield
    finally:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(1.0, device)


def workers() -> int:
    return max(1, min(14, (os.cpu_count() or 2) - 2))


class Bench:
    """The rows; each takes the runner's shared state and returns [(metric, value)]."""

    def __init__(self, p: Params, out: Path, device: torch.device):
        self.p, self.out, self.device = p, out, device
        self.dev = str(device)

    def setup(self, state):
        state["data"] = replicate_data(self.out / "data", self.p.unique, self.p.images, self.p.size)
        state["checkpoint"] = (None if self.p.model == "tiny"
                               else random_checkpoint(self.p.model, self.out / f"sam_{self.p.model}_random_relpos.pth"))
        return [("images, unique scenes", f"{self.p.images}, {self.p.unique}")]

    def correctness(self, state):
        from benchmarks.gpu_rows import correctness

        return correctness(self.p.model, state["checkpoint"], state["data"], self.device)

    def extract(self, state, images=None, name="extract.zarr"):
        from samcache.pipeline.configs import ExtractConfig
        from samcache.pipeline.extract import extract

        cache = self.out / name
        shutil.rmtree(cache, ignore_errors=True)
        result = extract(ExtractConfig(data=str(state["data"]), cache=str(cache), split="train",
                                       model_type=self.p.model,
                                       checkpoint=_str(state["checkpoint"]), device=self.dev, num_workers=workers(),
                                       limit=images or self.p.images), progress=False)
        state["cache" if images is None else "capped_cache"] = cache
        return [("img/s end to end", f"{result.img_per_s:.2f}"),
                ("img/s encoder only", f"{1 / result.encoder_seconds_per_image:.2f}"),
                ("cache MiB/image", f"{result.bytes_on_disk / result.n_done / 2**20:.2f}"),
                ("images", result.n_done)]

    def zero_shot(self, state, cache_key="cache", images=None):
        from samcache.pipeline.configs import ZeroShotConfig
        from samcache.pipeline.zero_shot import run_zero_shot

        record = run_zero_shot(ZeroShotConfig(cache=str(state[cache_key]), split="train", prompt="per-instance",
                                              device=self.dev, out=str(self.out / f"zero-shot-{cache_key}"),
                                              overwrite=True, visualize=0, num_workers=workers(),
                                              limit=images or self.p.zero_shot_images), progress=False)
        return [("prompts/s", f"{record['prompts_per_s']:.0f}"), ("prompts", record["prompts"]),
                ("prompt budget", record["prompt_budget"])]

    def clicks(self, state, cache_key="cache", images=None):
        from samcache.pipeline.clicks import run_clicks
        from samcache.pipeline.configs import ClicksConfig

        record = run_clicks(ClicksConfig(cache=str(state[cache_key]), split="train", device=self.dev,
                                         out=str(self.out / f"clicks-{cache_key}"), overwrite=True, visualize=0,
                                         num_workers=workers(), max_clicks=self.p.max_clicks,
                                         limit=images or self.p.click_images), progress=False)
        return [("clicks/s", f"{record['clicks_per_s']:.0f}"), ("objects, clicks", f"{record['objects']}, "
                                                                                 f"{record['clicks']}"),
                ("prompt budget", record["prompt_budget"])]

    def placement(self, state):
        """Click placement alone (RITM's rule), the batched device code against scipy one object at a time,
        on thing objects of the cached split with a prediction shifted 15 px off each (the first error)."""
        import numpy as np

        from benchmarks.bench_clicks import placement_alone
        from samcache.cache.reader import open_cache

        split = open_cache(state["cache"]).split("train")
        rounds, wanted = [], 8 if self.p.model == "tiny" else 64
        for row in range(len(split)):
            instances = split.instances[row]
            for iid in np.unique(instances[instances >= 1000])[:wanted - len(rounds)]:
                gt = instances == iid
                y, x = np.argwhere(gt)[0]
                rounds.append((np.roll(gt, 15, axis=1), gt, np.ones_like(gt), [(int(x), int(y), 1)]))
            if len(rounds) >= wanted:
                break
        host_s, device_s, same = placement_alone(rounds, self.dev)
        return [("objects", len(rounds)), ("scipy s/click", f"{host_s:.4f}"), ("device s/click", f"{device_s:.4f}"),
                ("device speed-up", f"{host_s / device_s:.2f}x"), ("same clicks", "yes" if same else "NO")]

    def head(self, state, preload=None):
        from samcache.pipeline.configs import EvaluateConfig, HeadConfig
        from samcache.pipeline.evaluate import run_evaluate as evaluate_head
        from samcache.pipeline.train_head import train_head

        if "head_cache" not in state:
            state["head_cache"] = replicated_cache(state["cache"], self.out / "head.zarr", self.p.train, self.p.val)
        preload = preload or ("gpu" if self.device.type == "cuda" else "ram")
        run = self.out / f"head-{preload}"
        record = train_head(HeadConfig(cache=str(state["head_cache"]), out=str(run), overwrite=True, epochs=1,
                                       batch_size=self.p.head_batch, preload=preload, device=self.dev, visualize=0,
                                       num_workers=0, precision="bf16" if self.device.type == "cuda" else "fp32"),
                            progress=False)
        t0 = time.perf_counter()
        evaluate_head(EvaluateConfig(head=str(run / "head_epoch_1.pt"), cache=str(state["head_cache"]),
                                     device=self.dev, out=str(self.out / f"eval-{preload}"), overwrite=True,
                                     num_workers=4), progress=False)
        return [(f"epoch s, {self.p.train} images", f"{record['train_seconds']:.2f}"),
                ("preload", record["preload"]), (f"evaluate s, {self.p.val} images", f"{time.perf_counter() - t0:.2f}")]

    def everything(self, state):
        from benchmarks.bench_everything import gpu_rows

        return gpu_rows(state["cache"], _str(state["checkpoint"]), self.p.model, self.device, *self.p.everything)

    def capped(self, method, **kw):
        def run(state):
            with memory_cap(self.device, CAP_BYTES):
                return method(state, **kw)
        return run

    def preload_decision(self, state):
        from samcache.evaluation.training_data import choose_preload, preload_bytes

        split = open_cache(str(state["head_cache"])).split("train")
        val = open_cache(str(state["head_cache"])).split("val")
        names = ("embeddings",)
        nbytes = (preload_bytes(split, range(CITYSCAPES[0]), "train", names)
                  + preload_bytes(val, range(CITYSCAPES[1]), "eval", names))
        return [(f"--preload auto for {CITYSCAPES[0]}+{CITYSCAPES[1]} images ({nbytes / 2**30:.1f} GiB)",
                 choose_preload("auto", nbytes, self.device))]

    def compile(self, state):
        from benchmarks.gpu_rows import compile_speed

        return compile_speed(self.p.model, state["checkpoint"], self.p.size, self.p.compile_batch, self.device)

    def ceiling(self, state):
        from benchmarks.gpu_rows import encoder_gflop, peak_bf16_tflops

        return [("measured bf16 matmul TFLOP/s (8192^3)", f"{peak_bf16_tflops(self.device):.0f}"),
                ("encoder GFLOP per image", f"{encoder_gflop(self.p.model, state['checkpoint'], self.device):.0f}")]

    def sam2(self, state):
        from benchmarks.gpu_rows import sam2_extract

        return sam2_extract(self.p.sam2, state["data"], self.out, self.device, self.p.sam2_images, workers())

    def sam3(self, state):
        """(g), (h) of benchmarks/bench_gpu_sam3.py: SAM 3 trunk extraction and text prompts."""
        from benchmarks.bench_gpu_sam3 import sam3_rows

        class Collect:  # the interface sam3_rows writes to
            def __init__(self):
                self.values = []

            def reset_peak(self):
                pass

            def add(self, row, metric, value, peak=True):
                self.values.append((f"{row}: {metric}", value))

        collected = Collect()
        smoke = self.p.model == "tiny"
        images = [r.image_path for r in list_images(state["data"], "train")][: self.p.sam2_images]
        sam3_rows("sam3_tiny" if smoke else "sam3", images, self.device, collected, batch=2 if smoke else 8,
                  text_batch=2 if smoke else 4)
        return collected.values

    def seed_way(self, state):
        from benchmarks.gpu_rows import seed_way

        return seed_way(self.p.model, state["checkpoint"], state["data"], self.device, self.p.seed_images)

    def rows(self) -> list[Row]:
        s, cap = self.p.scale, f"{CAP_BYTES // 2**30} GiB"
        return [
            Row("setup: data + random-weights checkpoint", self.setup, 30 * s),
            Row("correctness: bf16+SDPA vs upstream fp32", self.correctness, 25 * s, needs=("data", "checkpoint")),
            Row("extract", self.extract, 40 * s, needs=("data",)),
            Row("zero-shot per-instance", self.zero_shot, 20 * s, needs=("cache",)),
            Row("clicks", self.clicks, 25 * s, needs=("cache",)),
            Row("click placement alone: device vs scipy", self.placement, 5 * s, needs=("cache",)),
            Row("head epoch (preloaded) + evaluate", self.head, 35 * s, needs=("cache",)),
            Row("extract", self.capped(self.extract, images=self.p.capped_images, name="capped.zarr"), 15 * s,
                needs=("data",), cap=cap),
            Row("zero-shot per-instance", self.capped(self.zero_shot, cache_key="capped_cache",
                                                      images=self.p.capped_images), 10 * s,
                needs=("capped_cache",), cap=cap),
            Row("clicks", self.capped(self.clicks, cache_key="capped_cache", images=self.p.click_images // 2 or 1),
                15 * s, needs=("capped_cache",), cap=cap),
            Row("head epoch (--preload auto) + evaluate", self.capped(self.head, preload="auto"), 20 * s,
                needs=("head_cache",), cap=cap),
            Row("preload decision", self.capped(self.preload_decision), 2 * s, needs=("head_cache",), cap=cap),
            Row("everything: samcache vs upstream generate(), with and without the encoder", self.everything, 45 * s,
                needs=("cache",)),
            Row("ceiling", self.ceiling, 10 * s, needs=("checkpoint",)),
            Row("compile: encoder eager vs torch.compile", self.compile, 150 * s, needs=("checkpoint",)),
            Row(f"{self.p.sam2} extract", self.sam2, 25 * s, needs=("data",)),
            Row("sam3 trunk extraction + text prompts", self.sam3, 40 * s, needs=("data",)),
            Row("seed's way: SamPredictor.set_image loop, fp32, batch 1", self.seed_way, 15 * s,
                needs=("data", "checkpoint")),
        ]


def _str(path) -> str | None:
    return None if path is None else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="ViT-H, 8 scenes as 1,024 images, head 1,024/200 "
                       "(about 5 minutes on one H100)")
    group.add_argument("--smoke", action="store_true", help="toy size, tiny model, CPU allowed")
    parser.add_argument("--results", type=Path, default=None,
                        help="folder for bench_gpu.jsonl and bench_gpu.md, rewritten after every row (default: none)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds from start; rows that would end later are skipped and marked (default: "
                             f"{QUICK_DEADLINE_S:.0f} with --quick, else none)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: benchmarks/out/gpu-MODE)")
    parser.add_argument("--only", action="append", default=None, metavar="TEXT",
                        help="run only rows whose name contains TEXT (repeatable; setup always runs)")
    parser.add_argument("--append", action="store_true", help=f"append the table to {RESULTS.name}")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    p = MODES[mode]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and mode != "smoke":
        print("Error: bench_gpu needs a CUDA GPU (try --smoke to check the script on a CPU)", file=sys.stderr)
        return 1
    out = args.work or OUT / f"gpu-{mode}"
    out.mkdir(parents=True, exist_ok=True)
    weights = "random relative-position tables too" if p.model != "tiny" else "RANDOM weights"
    header = (f"bench_gpu --{mode}, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}\n\n"
              f"Random-init {p.model} ({weights}): speeds only; synthetic {p.size[0]}x{p.size[1]} data.")
    results = Results(args.results, header)
    runner = Runner(results, device, args.deadline if args.deadline or mode != "quick" else QUICK_DEADLINE_S)
    print(header, flush=True)
    rows = Bench(p, out, device).rows()
    rows = [r for i, r in enumerate(rows) if i == 0 or not args.only or any(t in r.name for t in args.only)]
    statuses = [runner.run(row) for row in rows]
    print("\n" + results.markdown() + f"\nbench_gpu took {time.monotonic() - runner.start:.0f} s", flush=True)
    if args.append:
        with open(RESULTS, "a") as f:
            f.write(f"\n## {results.markdown()}")
    return 0 if all(s != "error" for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
