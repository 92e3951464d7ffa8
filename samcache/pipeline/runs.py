"""Run folders: CSV tables and the run.json record that `samcache report` reads."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

RUN_RECORD = "run.json"


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    return value


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_record(out_dir: Path, record: dict) -> None:
    (Path(out_dir) / RUN_RECORD).write_text(json.dumps(record, indent=2, default=str))


def read_record(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / RUN_RECORD).read_text())


def _show(value) -> str:
    """Terminal/markdown cell: IoUs with 4 decimals, seconds and sizes with 1."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else (f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}")
    return str(value)


def format_table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_show(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])
