"""The GPU benchmark's data: synthetic Cityscapes-format scenes, random official-format checkpoints, and
a replicated cache for the head rows. Made once per work folder; all of it runs on a CPU too."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import torch

from samcache.cache.reader import open_cache
from samcache.cache.schema import Fingerprint
from samcache.cache.writer import SplitPlan, prepare_split, write_image
from samcache.data.cityscapes import list_images
from samcache.data.synth import write_synthetic
from samcache.features.sam1.build import build_random_sam


def _draw_scene(args) -> Path:
    root, k, size = args
    write_synthetic(root, {"train": 1}, size=size, seed=k, progress=False)
    return list_images(root, "train")[0]


def replicate_data(root: Path, unique: int, images: int, size: tuple[int, int]) -> Path:
    """``images`` Cityscapes-format files made of ``unique`` scenes (drawn in parallel; hard links)."""
    if (root / "leftImg8bit" / "train").is_dir() and len(list_images(root, "train")) == images:
        return root
    shutil.rmtree(root, ignore_errors=True)
    jobs = [(root.parent / f"{root.name}-scene{k}", k, size) for k in range(unique)]
    with ProcessPoolExecutor(min(unique, os.cpu_count() or 1)) as pool:
        source = list(pool.map(_draw_scene, jobs))
    for k in range(images):
        rec = source[k % unique]
        new_id = f"bench_{k:06d}_000019"
        for kind, path in (("leftImg8bit", rec.image_path), ("gtFine", rec.label_path), ("gtFine", rec.instance_path)):
            target = root / kind / "train" / "bench" / path.name.replace(rec.image_id, new_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    return root


def random_checkpoint(model_type: str, path: Path, rel_pos_std: float = 0.5) -> Path:
    """An official-format SAM checkpoint (a state dict) of random weights whose relative-position tables
    are random too (upstream initialises them to zeros, which hides the attention-bias path)."""
    if not path.exists():
        sam = build_random_sam(model_type, 0)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, param in sam.image_encoder.named_parameters():
                if "rel_pos" in name:
                    param.copy_(torch.randn(param.shape, generator=generator) * rel_pos_std)
        torch.save(sam.state_dict(), path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    return path


def replicated_cache(source: Path, target: Path, train: int, val: int, source_rows: int = 32) -> Path:
    """A cache of ``train`` + ``val`` rows cycling through the first ``source_rows`` extracted ones (the head
    sees real embeddings; reading all of a 1,024-image source would hold 8 GiB for nothing new)."""
    src = open_cache(source).split("train")
    fp = src.fingerprint
    rows = min(len(src), source_rows)
    emb, labels, inst = src.embeddings[:rows], src.labels[:rows], src.instances[:rows]
    size = tuple(int(v) for v in src.original_sizes[0])
    shutil.rmtree(target, ignore_errors=True)
    for split, n in (("train", train), ("val", val)):
        ids = [f"bench_{k:06d}_000019" for k in range(n)]
        prepared = prepare_split(SplitPlan(str(target), split, ids, [size] * n, Fingerprint(**fp.to_attrs()),
                                           src.attrs["data_root"], "zstd", present_ids=set(ids)))
        arrays = {name: prepared.group[name] for name in ("embeddings", "labels", "instances", "done")}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: write_image(arrays, k, {"embeddings": emb[k % len(emb)]}, labels[k % len(emb)],
                                                inst[k % len(emb)]), range(n)))
    return target
