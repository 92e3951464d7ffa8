"""Rows of a GPU benchmark that survive anything: each row runs alone, is written the moment it ends,
and a row that fails, or would not finish before the deadline, is marked and costs nothing else.

A lent GPU sends back only the files of one folder, and a run can be cut off at its time limit, so
``RESULTS_DIR/bench_gpu.jsonl`` (one JSON object per metric) and ``bench_gpu.md`` (the table so far) are
rewritten after every row, atomically.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

JSONL, MARKDOWN = "bench_gpu.jsonl", "bench_gpu.md"
COLUMNS = ("row", "metric", "value", "peak_gib", "seconds", "cap", "status")


@dataclass
class Metric:
    row: str
    metric: str
    value: str
    peak_gib: str = ""  # peak GPU memory allocated during the row ("-" on a CPU)
    seconds: str = ""  # the row's wall time
    cap: str = ""  # the per-process GPU memory cap the row ran under ("" for none)
    status: str = "ok"  # ok | error | skipped: why


class Results:
    """Metrics so far, mirrored to ``folder`` (if any) after every row."""

    def __init__(self, folder: Path | None, header: str):
        self.metrics: list[Metric] = []
        self.folder, self.header = folder, header
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for name in (JSONL, MARKDOWN):
                (folder / name).unlink(missing_ok=True)

    def extend(self, metrics: list[Metric]) -> None:
        self.metrics += metrics
        for m in metrics:
            print(f"  {m.row}: {m.metric} = {m.value}" + (f"  [{m.status}]" if m.status != "ok" else ""), flush=True)
        if self.folder is not None:
            _atomic_write(self.folder / JSONL, "".join(json.dumps(asdict(m)) + "\n" for m in self.metrics))
            _atomic_write(self.folder / MARKDOWN, self.markdown())

    def markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
        lines += ["| " + " | ".join(str(getattr(m, c)).replace("|", "/") for c in COLUMNS) + " |" for m in self.metrics]
        return f"{self.header}\n\n" + "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class Row:
    """One benchmark row: ``run(state)`` returns [(metric, value)] and may leave things in ``state`` for
    later rows (``needs`` names them). ``estimate_s`` is its expected wall time, for the deadline."""

    name: str
    run: Callable[[dict], list[tuple[str, object]]]
    estimate_s: float
    needs: tuple[str, ...] = ()
    cap: str = ""


class Runner:
    def __init__(self, results: Results, device: torch.device, deadline_s: float | None,
                 clock: Callable[[], float] = time.monotonic):
        self.results, self.device, self.deadline_s, self.clock = results, device, deadline_s, clock
        self.start = clock()
        self.state: dict = {}

    def left_s(self) -> float:
        return float("inf") if self.deadline_s is None else self.deadline_s - (self.clock() - self.start)

    def run(self, row: Row) -> str:
        """Runs ``row`` unless the deadline or a missing input forbids; returns its status."""
        missing = [n for n in row.needs if n not in self.state]
        if missing:
            return self._mark(row, f"skipped: needs {', '.join(missing)}, which an earlier row did not make")
        if row.estimate_s > self.left_s():
            return self._mark(row, f"skipped: deadline ({self.left_s():.0f} s left, row needs ~{row.estimate_s:.0f} s)")
        self._reset_peak()
        t0 = self.clock()
        try:
            values = row.run(self.state)
            status = "ok"
        except Exception as exc:  # noqa: BLE001: one failing row must lose nothing else
            traceback.print_exc()
            message = str(exc).splitlines()[0] if str(exc) else ""
            values, status = [("error", f"{type(exc).__name__}: {message}"[:300])], "error"
        if status == "error" and self.device.type == "cuda":
            torch.cuda.empty_cache()  # out of the except block: the traceback no longer holds the row's tensors
        seconds, peak = self.clock() - t0, self._peak_gib()
        self.results.extend([Metric(row.name, metric, str(value), peak, f"{seconds:.1f}", row.cap, status)
                             for metric, value in values])
        return status

    def _mark(self, row: Row, status: str) -> str:
        self.results.extend([Metric(row.name, "-", "-", "", "", row.cap, status)])
        return status

    def _reset_peak(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def _peak_gib(self) -> str:
        if self.device.type != "cuda":
            return "-"
        return f"{torch.cuda.max_memory_allocated(self.device) / 2**30:.2f}"
