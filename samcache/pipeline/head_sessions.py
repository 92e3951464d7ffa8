"""A head run's sessions: the train-head that began it and every --resume since. The run's time is their sum.

Each session's time (up to its last checkpoint) is in every run.json written after that checkpoint, so a
session that was killed still counts; the report's ``wall_s`` is the run's ``seconds``, every session's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from samcache.errors import SamcacheError
from samcache.pipeline.runs import read_record

TIMES = ("seconds", "load_seconds", "train_seconds")


@dataclass
class Session:
    """This invocation: when it began, the epoch it began with, its load and training seconds so far."""

    started: str
    t0: float  # time.perf_counter() when it began
    first_epoch: int = 1
    load_seconds: float = 0.0
    train_seconds: float = 0.0
    earlier: list[dict] = field(default_factory=list)  # the run's earlier sessions, oldest first

    def as_dict(self, last_epoch: int) -> dict:
        return {"started": self.started, "first_epoch": self.first_epoch, "last_epoch": last_epoch,
                "seconds": round(time.perf_counter() - self.t0, 3), "load_seconds": round(self.load_seconds, 3),
                "train_seconds": round(self.train_seconds, 3)}

    def all(self, last_epoch: int) -> list[dict]:
        return [*self.earlier, self.as_dict(last_epoch)]


def earlier_sessions(run_dir: Path, history: list[dict]) -> list[dict]:
    """The sessions run.json lists; for a run recorded before sessions were (or a damaged record), one session
    estimated from what is known: its record's seconds, else the kept epochs' seconds."""
    try:
        record = read_record(run_dir)
    except SamcacheError:
        record = {}
    if record.get("sessions"):
        return list(record["sessions"])
    if not history:
        return []
    epochs = sum(float(r.get("epoch_seconds") or 0) for r in history)
    seconds = float(record["seconds"]) if isinstance(record.get("seconds"), (int, float)) else epochs
    return [{"started": record.get("started"), "first_epoch": 1, "last_epoch": int(history[-1]["epoch"]),
             "seconds": round(seconds, 3), "load_seconds": None, "train_seconds": None, "estimated": True}]


def totals(sessions: list[dict]) -> dict:
    """The run's seconds, load seconds and training seconds: every session's (unknown parts count as 0)."""
    return {k: round(sum(float(s.get(k) or 0) for s in sessions), 3) for k in TIMES}
