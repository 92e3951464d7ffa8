"""Bytes/image and write speed of each codec, for float16 and float32 embeddings and the labels.

Embeddings come from the tiny model (RANDOM weights) on synthetic scenes: real ViT-H
embeddings have other statistics, so re-run this on a real cache before trusting the sizes.
"""

from __future__ import annotations

import shutil

import torch
import zarr

from benchmarks.common import OUT, synth_data, timer
from samcache.cache.schema import CODECS, FORMAT1_FEATURES

EMBED_SHAPE = FORMAT1_FEATURES["embeddings"]
from samcache.data.cityscapes import list_images
from benchmarks.common import encode
from samcache.features.sam1.build import build_sam
from samcache.data.cityscapes import load_item
from samcache.features.sam1.preprocess import resize_and_pad_uint8

N = 6


def run() -> list[dict]:
    records = list_images(synth_data(16, 0), "train")[:N]
    items = [load_item(r, resize_and_pad_uint8) for r in records]
    sam, _ = build_sam("tiny", seed=0)
    emb = encode(sam.image_encoder, torch.stack([it["image"] for it in items]),
                 torch.tensor([it["input_size"] for it in items])).numpy()
    rows = []
    for codec in CODECS:
        for dtype in ("float16", "float32"):
            path = OUT / "codec.zarr"
            shutil.rmtree(path, ignore_errors=True)
            group = zarr.open_group(str(path), mode="w")
            arr = group.create_array("e", shape=(N, *EMBED_SHAPE), chunks=(1, *EMBED_SHAPE), dtype=dtype,
                                     compressors=CODECS[codec]())
            data = emb.astype(dtype)
            with timer() as t:
                for i in range(N):
                    arr[i] = data[i]
            raw = data[0].nbytes
            per_image = arr.nbytes_stored() / N
            rows.append({"benchmark": "codecs", "metric": f"{codec} {dtype} embeddings",
                         "value": f"{per_image / 2**20:.3f} MiB/img ({raw / per_image:.2f}x), "
                                  f"{N * raw / t['s'] / 2**20:.0f} MiB/s write"})
        labels = zarr.open_group(str(path), mode="a").create_array(
            "l", shape=(N, *items[0]["labels"].shape), chunks=(1, *items[0]["labels"].shape), dtype="uint8",
            compressors=CODECS[codec]())
        for i in range(N):
            labels[i] = items[i]["labels"]
        rows.append({"benchmark": "codecs", "metric": f"{codec} labels (2048x1024 uint8)",
                     "value": f"{labels.nbytes_stored() / N / 2**10:.1f} KiB/img"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
