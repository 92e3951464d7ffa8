"""The skeleton every Stage-2 command shares: a stage is its own logic inside ``run_stage``.

``run_stage`` owns what zero-shot, clicks, train-head and evaluate each did by hand: the run folder (new,
replaced with --overwrite, or resumed) and its lock, the timer and the encoder-pass count, the subset
warning, the saved config (config.yaml), and run.json (a ``RunRecord``, written once by ``finish``, with
the time, passes, config and folder filled in). What a stage shows in reports: ``stage_registry.py``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from samcache.features.device import PASSES, describe_device
from samcache.pipeline.config import now_iso, save_config
from samcache.pipeline.provenance import warn_subset
from samcache.pipeline.run_folder import RunFolder, resumed_folder, run_folder
from samcache.pipeline.runs import RunRecord

CONFIG = "config.yaml"


@dataclass
class StageRun:
    """One stage run in progress: its folder, its config, and when and at which encoder pass count it began."""

    folder: RunFolder
    out: Path
    cfg: object  # the effective config: what config.yaml and run.json record
    started: str
    t0: float
    passes: int
    device: object = None  # the device the run used, recorded in config.yaml (None: the config's own)

    def seconds(self) -> float:
        return time.perf_counter() - self.t0

    def save_config(self) -> None:
        save_config(self.cfg, self.out / CONFIG, device=self.device)

    def finish(self, record: RunRecord, commit: bool = True) -> dict:
        """Fill in what the skeleton knows (start, seconds, encoder passes, config, folder), write run.json with
        the run's outputs, and keep the folder from now on; returns the record as run.json has it."""
        record.started = record.started if record.started is not None else self.started
        record.seconds = record.seconds if record.seconds is not None else round(self.seconds(), 3)
        record.encoder_passes = (record.encoder_passes if record.encoder_passes is not None
                                 else PASSES["images"] - self.passes)
        record.config = record.config if record.config is not None else self.cfg.dump()
        record.out = str(self.out)
        self.folder.record(record)
        if commit:
            self.folder.commit()
        return record.to_json()


@contextlib.contextmanager
def run_stage(stage: str, cfg, out: str | Path, reads: list = (), *, device=None, prov: dict | None = None,
              resume: bool = False, config_now: bool = True, since: tuple[str, float] | None = None
              ) -> Iterator[StageRun]:
    """A run of ``stage`` into ``out``: everything undone if the body fails before a first result.

    ``reads``: what the command reads (--out may not overlap it). ``prov``: the run's provenance, whose
    subset warning goes to run.log too. ``resume``: continue the run in ``out``. ``config_now=False``: the
    stage saves config.yaml itself (``StageRun.save_config``) after checks that must leave a folder unchanged.
    ``since``: (start time, ``perf_counter``) when the stage's clock began before the folder (a head's checks).
    """
    out = Path(out)
    (started, t0), passes = since or (now_iso(), time.perf_counter()), PASSES["images"]
    folder = resumed_folder(out, stage) if resume else run_folder(out, stage, cfg.overwrite, started, reads=reads)
    with folder as held:
        run = StageRun(held, out, cfg, started, t0, passes, device)
        if prov is not None:
            warn_subset(prov, stage)  # after the folder exists: run.log keeps it too
        if config_now:
            run.save_config()
        yield run


def decoding_record(d, stage: str, seconds: float, **fields) -> RunRecord:
    """run.json of a decoding stage (zero-shot, clicks): the session's facts, and the stage's own ``fields``.
    ``d``: an ``evaluation.decoding.Decoding``."""
    cfg, weights = d.cfg, d.weights
    return RunRecord.from_json({"stage": stage, "status": "complete", "started": None, "seconds": round(seconds, 3),
                                "images": len(d.rows),
                                "classes": cfg.classes, "cache": str(cfg.cache), "split": cfg.split,
                                "device": describe_device(d.device), "prompt_budget": d.decoder.budget,
                                "weights": weights.describe(), "fingerprint": d.split.fingerprint.describe(),
                                "random_weights": weights.random, "encoder_passes": None, "config": None, "out": None,
                                **fields})
