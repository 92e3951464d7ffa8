"""Run folders: who owns them, how they are created and replaced, and the files inside.

A run folder is samcache's when it holds ``run.json`` (written first, status "running", then
rewritten "complete"). Rules: a new run goes into a new or empty folder; a folder holding an
earlier run is replaced only with --overwrite (and only the files samcache writes); a folder
that is not a run is never touched. A command that fails before its first result leaves the
folder as it found it. Every file is written atomically.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from samcache import fileio
from samcache.errors import SamcacheError

RUN_RECORD = "run.json"
# what samcache writes into run folders (globs); --overwrite removes these and nothing else
RUN_OUTPUTS = ("run.json", "config.yaml", "summary.csv", "detailed_results.csv", "metrics.csv", "per_object.csv",
               "curve.png", "report.md", "report.csv", "report_iou.png", "head_epoch_*.pt", "visualizations",
               "predictions", ".*.tmp")


@dataclass
class RunFolder:
    path: Path
    stage: str
    created: bool  # the folder did not exist before
    committed: bool = False  # a first result exists: keep the folder whatever happens next

    def commit(self) -> None:
        self.committed = True


def read_record(run_dir: str | Path) -> dict:
    """run.json, with one-line errors for a missing, corrupt or foreign record."""
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        raise SamcacheError(f"{run_dir} is not a samcache run folder (no {RUN_RECORD})")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SamcacheError(f"{path} is unreadable or corrupt ({type(exc).__name__}); re-run that command") from None
    if not isinstance(record, dict) or "stage" not in record:
        raise SamcacheError(f"{path} is not a samcache run record (no 'stage')")
    return record


def is_run_folder(path: Path) -> bool:
    try:
        read_record(path)
        return True
    except SamcacheError:
        return (path / RUN_RECORD).is_file()  # a damaged record is still ours


def _clear(path: Path) -> None:
    """Remove what samcache writes in a run folder, and nested run folders (evaluations of it)."""
    for pattern in RUN_OUTPUTS:
        for item in path.glob(pattern):
            shutil.rmtree(item) if item.is_dir() else item.unlink()
    for item in path.iterdir():
        if item.is_dir() and is_run_folder(item):
            shutil.rmtree(item)


def _refuse(path: Path, stage: str, overwrite: bool) -> None:
    if path.is_file():
        raise SamcacheError(f"--out {path} is a file")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not is_run_folder(path):
        raise SamcacheError(f"--out {path} is not empty and is not a samcache run folder; choose a new or empty "
                            f"folder")
    if not overwrite:
        held = read_record(path).get("stage", "?") if (path / RUN_RECORD).is_file() else "?"
        more = f", or --resume {path} to continue it" if held == "head" and stage == "head" else ""
        raise SamcacheError(f"--out {path} already holds a samcache {held} run; pass --overwrite to replace it{more}")
    _clear(path)


@contextlib.contextmanager
def run_folder(path: str | Path, stage: str, overwrite: bool = False, started: str = "") -> Iterator[RunFolder]:
    """Create (or take over) a run folder; undo it if the body fails before ``commit()``."""
    path = Path(path)
    _refuse(path, stage, overwrite)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        write_record(path, {"stage": stage, "status": "running", "started": started})
    except OSError as exc:
        _undo(path, created)
        raise SamcacheError(f"cannot write the run folder {path}: {exc.strerror or exc}") from None
    folder = RunFolder(path, stage, created)
    try:
        yield folder
    except BaseException:
        if not folder.committed:
            _undo(path, created)
        raise


@contextlib.contextmanager
def resumed_folder(path: str | Path, stage: str) -> Iterator[RunFolder]:
    """An existing run of ``stage`` to continue: never removed."""
    record = read_record(path)
    if record["stage"] != stage:
        raise SamcacheError(f"{path} holds a {record['stage']} run, not a {stage} run")
    yield RunFolder(Path(path), stage, created=False, committed=True)


def _undo(path: Path, created: bool) -> None:
    if created:
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_dir():  # it was empty (or cleared by --overwrite) before this run
        for item in path.iterdir():
            shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)


def write_record(out_dir: str | Path, record: dict) -> None:
    fileio.write_text(Path(out_dir) / RUN_RECORD, json.dumps(record, indent=2, default=str))


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else [])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    fileio.write_text(path, buffer.getvalue())


def _fmt(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    return value


def read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SamcacheError(f"cannot read {path}: {exc}") from None


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
