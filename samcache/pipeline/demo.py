"""`samcache demo`: the whole study on the embedded default, end to end, on a CPU in minutes.

synthesize a Cityscapes-format set -> extract (tiny model, or ViT-H if its checkpoint is in
checkpoints/) -> zero-shot with two prompt strategies -> train the head -> report.
Every step is the same Python API the commands use; nothing here is demo-only logic.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from samcache.data.synth import write_synthetic
from samcache.errors import SamcacheError
from samcache.pipeline.config import save_config
from samcache.pipeline.extract import ExtractConfig, extract
from samcache.pipeline.report import build_report
from samcache.pipeline.train_head import HeadConfig, train_head
from samcache.pipeline.zero_shot import ZeroShotConfig, run_zero_shot

VIT_H_CHECKPOINT = Path("checkpoints/sam_vit_h_4b8939.pth")
DATA_MARKER = "demo-data.json"  # what the synthetic data was made from: reused only if it matches
RUN_FOLDERS = ("report", "head")  # plus zero-shot-<prompt>: recreated by every demo run


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    train: int = 24
    val: int = 8
    size: str = "1024x512"  # WIDTHxHEIGHT of the synthetic images
    seed: int = 0
    model_type: str = "auto"  # auto: vit_h if checkpoints/sam_vit_h_4b8939.pth exists, else tiny
    checkpoint: str | None = None
    dtype: str = "float16"
    batch_size: int = 4
    num_workers: int = 1
    prompts: list[str] = field(default_factory=lambda: ["random", "center"])
    multimask: str = "best-score"
    classes: str = "seed5"
    epochs: int = 6
    head_batch_size: int = 8
    visualize: int = 2
    device: str = "auto"

    def model(self) -> tuple[str, str | None]:
        if self.model_type != "auto":
            return self.model_type, self.checkpoint
        if self.checkpoint or VIT_H_CHECKPOINT.is_file():
            return "vit_h", self.checkpoint or str(VIT_H_CHECKPOINT)
        return "tiny", None

    def data_key(self) -> dict:
        return {"train": self.train, "val": self.val, "size": self.size, "seed": self.seed}

    def image_size(self) -> tuple[int, int]:
        try:
            width, height = (int(v) for v in self.size.lower().split("x"))
        except ValueError:
            raise SamcacheError(f"--size expects WIDTHxHEIGHT, got {self.size!r}") from None
        return width, height


def _say(step: int, text: str, progress: bool) -> None:
    if progress:
        print(f"\n[{step}/5] {text}", flush=True)


def _fresh_data(cfg: DemoConfig, out: Path) -> tuple[Path, Path, bool]:
    """Reuse data + cache from an identical earlier demo (extraction then resumes: nothing to do)."""
    data, cache, marker = out / "data", out / "cache.zarr", out / "data" / DATA_MARKER
    reuse = marker.is_file() and json.loads(marker.read_text()) == cfg.data_key()
    if not reuse:
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    for name in RUN_FOLDERS + tuple(f"zero-shot-{p}" for p in cfg.prompts):
        shutil.rmtree(out / name, ignore_errors=True)
    return data, cache, reuse


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict:
    """Run the five steps into ``cfg.out``; return the report (tables, paths) plus timings."""
    out = Path(cfg.out)
    size = cfg.image_size()
    model_type, checkpoint = cfg.model()
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml", {"model_resolved": model_type, "checkpoint_resolved": checkpoint})
    data, cache, reuse = _fresh_data(cfg, out)
    t0 = time.perf_counter()

    _say(1, f"synthetic Cityscapes-format data: {cfg.train} train + {cfg.val} val at {cfg.size} -> {data}"
         + ("  (reused)" if reuse else ""), progress)
    if not reuse:
        write_synthetic(data, {"train": cfg.train, "val": cfg.val}, size=size, seed=cfg.seed, progress=progress)
        (data / DATA_MARKER).write_text(json.dumps(cfg.data_key()))

    _say(2, f"extract: {model_type} image encoder, once per image -> {cache}", progress)
    extracted = []
    for split in ("train", "val"):
        result = extract(ExtractConfig(data=str(data), cache=str(cache), split=split, model_type=model_type,
                                       checkpoint=checkpoint, seed=cfg.seed, dtype=cfg.dtype,
                                       batch_size=cfg.batch_size, num_workers=cfg.num_workers, device=cfg.device),
                         progress=progress)
        if result.failed:
            raise SamcacheError(f"extract {split}: {len(result.failed)} image(s) failed; first: {result.failed[0]}")
        extracted.append(result)
        if progress:
            print(result.summary_line(), flush=True)

    _say(3, f"zero-shot from the cache, prompts: {', '.join(cfg.prompts)}", progress)
    zero_shot_dirs = []
    for prompt in cfg.prompts:
        record = run_zero_shot(ZeroShotConfig(cache=str(cache), split="val", prompt=prompt, multimask=cfg.multimask,
                                              classes=cfg.classes, seed=cfg.seed, visualize=cfg.visualize,
                                              out=str(out / f"zero-shot-{prompt}"), device=cfg.device),
                               progress=progress)
        zero_shot_dirs.append(record["out"])

    _say(4, f"train the semantic head from the cache: {cfg.epochs} epochs", progress)
    head = train_head(HeadConfig(cache=str(cache), classes=cfg.classes, epochs=cfg.epochs,
                                 batch_size=cfg.head_batch_size, seed=cfg.seed, out=str(out / "head"),
                                 visualize=cfg.visualize, device=cfg.device, num_workers=0), progress=progress)

    _say(5, "report: Phase 1 vs Phase 2", progress)
    report = build_report([*zero_shot_dirs, head["out"]], out / "report")
    report.update(seconds=time.perf_counter() - t0, model_type=model_type, extracted=[asdict(r) for r in extracted],
                  run_dirs=[*zero_shot_dirs, head["out"]])
    return report
