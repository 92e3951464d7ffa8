"""`samcache demo`: the whole study on the embedded default, end to end, on a CPU in minutes.

synthesize a Cityscapes-format set -> extract (tiny model, or ViT-H if its checkpoint is in
checkpoints/) -> zero-shot with two prompt strategies -> interactive clicks -> train the head
-> report (report.html: the gallery reads the runs' saved predictions).
Every step is the same Python API the commands use; nothing here is demo-only logic except
reuse: data and cache from an earlier demo are reused when they were made with the same
settings (data size and seed; model, checkpoint and dtype), otherwise new ones are built
beside the old ones and swapped in only after extraction succeeded. Earlier run folders are
replaced only after that point too.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import zarr

from samcache import fileio
from samcache.cache.locks import remove_lock_files
from samcache.cache.store import is_samcache_store
from samcache.choices import parse_size
from samcache.data.synth import read_marker, write_synthetic
from samcache.errors import SamcacheError
from samcache.features.checkpoints import identify_checkpoint
from samcache.features.families import backend_for
from samcache.pipeline.clicks import run_clicks
from samcache.pipeline.configs import (ClicksConfig, DemoConfig, EverythingConfig, ExtractConfig, HeadConfig,
                                       ZeroShotConfig)
from samcache.pipeline.everything import run_everything
from samcache.pipeline.config import save_config
from samcache.pipeline.extract import extract
from samcache.pipeline.report import build_report
from samcache.pipeline.train_head import train_head
from samcache.pipeline.zero_shot import run_zero_shot

VIT_H_CHECKPOINT = Path("checkpoints/sam_vit_h_4b8939.pth")
STATE = "demo-state.json"  # what data/ and cache.zarr were made from, written once they are complete
EVERYTHING = "head-sam-masks"  # the run folder of the step refining the head with SAM's automatic masks
STAGING = "demo-staging.json"  # what data.next/ and cache.next.zarr are being made from (resumable)


def resolve_model(cfg: DemoConfig) -> tuple[str, str | None]:
    if cfg.model_type != "auto":
        return cfg.model_type, cfg.checkpoint
    if cfg.checkpoint:
        return identify_checkpoint(cfg.checkpoint), cfg.checkpoint
    if VIT_H_CHECKPOINT.is_file():
        return "vit_h", str(VIT_H_CHECKPOINT)
    return "tiny", None


def _say(step: int, text: str, progress: bool) -> None:
    if progress:
        print(f"\n[{step}/7] {text}", flush=True)


def _remove_own(path: Path) -> None:
    """Delete a folder only if it is samcache's (synthetic data or a cache); refuse anything else."""
    if not path.exists():
        return
    legacy = (path / "demo-data.json").is_file()  # data of a demo from samcache 0.1
    if read_marker(path) is None and not is_samcache_store(path) and not legacy:
        raise SamcacheError(f"{path} exists and was not made by samcache; move it away to run the demo here")
    shutil.rmtree(path)


def demo_prompts(cfg: DemoConfig, model_type: str) -> list[str]:
    """The zero-shot prompts of the demo: ``cfg.prompts``, plus text where the family answers noun phrases."""
    text = backend_for(model_type).text_prompts
    if "text" in cfg.prompts and not text:
        raise SamcacheError(f"--prompt text needs a SAM 3 model; {model_type} takes points and boxes only")
    return list(cfg.prompts) + (["text"] if text and "text" not in cfg.prompts else [])


def _check_out(cfg: DemoConfig, out: Path, prompts: list[str]) -> None:
    """Before any work: the demo folder and everything in it that the demo replaces must be the demo's."""
    if out.is_file():
        raise SamcacheError(f"--out {out} is a file")
    marks = (STATE, STAGING, "data/demo-data.json")  # a demo folder (the last: samcache 0.1)
    if out.is_dir() and any(out.iterdir()) and not any((out / n).exists() for n in marks):
        raise SamcacheError(f"--out {out} is not empty and is not a samcache demo folder; choose a new or empty folder")
    for name in ("data", "data.next", "cache.zarr", "cache.next.zarr"):
        path = out / name
        if path.exists() and read_marker(path) is None and not is_samcache_store(path) and \
                not (path / "demo-data.json").is_file():
            raise SamcacheError(f"{path} exists and was not made by samcache; move it away to run the demo here")
    for name in ("report", "head", "clicks", EVERYTHING, *(f"zero-shot-{p}" for p in prompts)):
        path = out / name
        if path.is_dir() and any(path.iterdir()) and not (path / "run.json").is_file():
            raise SamcacheError(f"{path} is not a samcache run folder; move it away to run the demo here")


def _keys(cfg: DemoConfig, model_type: str, checkpoint: str | None) -> tuple[dict, dict]:
    data_key = {"train": cfg.train, "val": cfg.val, "size": cfg.size, "seed": cfg.seed}
    weights = backend_for(model_type).check_weights(model_type, checkpoint, cfg.seed)
    cache_key = {**data_key, "model_type": model_type, "checkpoint_sha256": weights.checkpoint_sha256,
                 "dtype": cfg.dtype}
    return data_key, cache_key


def _state(out: Path, name: str = "demo-state.json") -> dict:
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return {}


def _swap_in(staging: Path, final: Path) -> None:
    _remove_own(final)
    os.replace(staging, final)


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run the five steps into ``cfg.out``; return the report (tables, paths) plus timings."""
    out = Path(cfg.out)
    size = parse_size(cfg.size)
    model_type, checkpoint = resolve_model(cfg)
    data_key, cache_key = _keys(cfg, model_type, checkpoint)
    prompts = demo_prompts(cfg, model_type)
    _check_out(cfg, out, prompts)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    state = _state(out)
    data, cache = out / "data", out / "cache.zarr"
    reuse_data = state.get("data") == data_key and (read_marker(data) or {}).get("complete")
    reuse_cache = reuse_data and state.get("cache") == cache_key and is_samcache_store(cache)
    data_dir = data if reuse_data else out / "data.next"
    cache_dir = cache if reuse_cache else out / "cache.next.zarr"
    t0 = time.perf_counter()

    staging = {"data": data_key, "cache": cache_key}
    if _state(out, STAGING) != staging:  # staging folders of a killed demo with other settings
        _remove_own(out / "data.next")
        _remove_own(out / "cache.next.zarr")
        fileio.write_text(out / STAGING, json.dumps(staging))

    _say(1, f"synthetic Cityscapes-format data: {cfg.train} train + {cfg.val} val at {cfg.size} -> {data}"
         + ("  (reused)" if reuse_data else ""), progress)
    if not reuse_data:  # a killed demo's data.next is completed, not redone
        write_synthetic(data_dir, {"train": cfg.train, "val": cfg.val}, size=size, seed=cfg.seed, progress=progress)

    _say(2, f"extract: {model_type} image encoder, once per image -> {cache}"
         + ("  (reused)" if reuse_cache else ""), progress)
    extracted = []
    for split in ("train", "val"):
        result = extract(ExtractConfig(data=str(data_dir), cache=str(cache_dir), split=split, model_type=model_type,
                                       checkpoint=checkpoint, seed=cfg.seed, dtype=cfg.dtype,
                                       batch_size=cfg.batch_size, num_workers=cfg.num_workers, device=cfg.device),
                         progress=progress)
        if result.failed:
            raise SamcacheError(f"extract {split}: {len(result.failed)} image(s) failed; first: {result.failed[0]}")
        extracted.append(result)
        if progress:
            print(result.summary_line(), flush=True)
    if not reuse_data:
        _swap_in(data_dir, data)
    if not reuse_cache:
        _swap_in(cache_dir, cache)
        remove_lock_files(str(cache_dir), ["train", "val"])  # the staging path is gone; its locks are clutter
        root = zarr.open_group(str(cache), mode="r+")
        for split in ("train", "val"):  # the images now live under out/data
            root[split].attrs["data_root"] = os.path.abspath(data)
    fileio.write_text(out / STATE, json.dumps({"data": data_key, "cache": cache_key}))

    _say(3, f"zero-shot from the cache, prompts: {', '.join(prompts)}", progress)
    zero_shot_dirs = []
    for prompt in prompts:
        points = {} if prompt == "text" else {"multimask": cfg.multimask}  # text: no mask choice to make
        record = run_zero_shot(ZeroShotConfig(cache=str(cache), split="val", prompt=prompt, **points,
                                              classes=cfg.classes, seed=cfg.seed, visualize=cfg.visualize,
                                              save_predictions=True, out=str(out / f"zero-shot-{prompt}"), overwrite=True,
                                              device=cfg.device, checkpoint=checkpoint), progress=progress)
        zero_shot_dirs.append(record["out"])

    run_dirs = list(zero_shot_dirs)
    if cfg.max_clicks:
        _say(4, f"interactive clicks from the cache: up to {cfg.max_clicks} per object, on the first "
                f"{min(cfg.click_images, cfg.val)} of {cfg.val} val images", progress)
        record = run_clicks(ClicksConfig(cache=str(cache), split="val", max_clicks=cfg.max_clicks,
                                         limit=min(cfg.click_images, cfg.val),
                                         classes=cfg.classes, seed=cfg.seed, visualize=cfg.visualize,
                                         save_predictions=True, out=str(out / "clicks"), overwrite=True, device=cfg.device,
                                         checkpoint=checkpoint),
                            progress=progress)
        run_dirs.append(record["out"])

    _say(5, f"train the semantic head from the cache: {cfg.epochs} epochs", progress)
    head = train_head(HeadConfig(cache=str(cache), classes=cfg.classes, epochs=cfg.epochs,
                                 batch_size=cfg.head_batch_size, seed=cfg.seed, out=str(out / "head"), overwrite=True,
                                 visualize=cfg.visualize, save_predictions=True, device=cfg.device, num_workers=0),
                      progress=progress)

    run_dirs.append(head["out"])
    if cfg.points_per_side and backend_for(model_type).info.mask_generator is not None:
        random = checkpoint is None  # random weights keep no mask at upstream's thresholds
        _say(6, f"SAM's automatic masks from the cache ({cfg.points_per_side}x{cfg.points_per_side} points"
                + (", thresholds 0: random weights" if random else "") + ") refining the head", progress)
        thresholds = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0} if random else {}
        record = run_everything(EverythingConfig(cache=str(cache), split="val", checkpoint=checkpoint,
                                                 points_per_side=cfg.points_per_side, **thresholds,
                                                 refine_with=head["out"], visualize=cfg.visualize, device=cfg.device,
                                                 out=str(out / EVERYTHING), overwrite=True, num_workers=0),
                                progress=progress)
        run_dirs.append(record["out"])

    _say(7, "report: Phase 1 vs Phase 2", progress)
    report = build_report(run_dirs, out / "report", overwrite=True)
    report.update(seconds=time.perf_counter() - t0, model_type=model_type,
                  extracted=[vars(r) for r in extracted], run_dirs=run_dirs)
    return report
