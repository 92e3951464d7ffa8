"""What a run folder holds: the run.json record and the CSV tables, written atomically.

Who owns a folder, and how runs are created, replaced and resumed: ``run_folder.py``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from samcache import fileio
from samcache.errors import SamcacheError

RUN_RECORD = "run.json"
SET_ASIDE = ".samcache-replaced"  # a replaced run's files, until the new run has a first result (run_folder.py)
PER_IMAGE = "per_image.csv"  # a head's (train-head, evaluate) IoU per image and class in its ground truth or prediction
# zero-shot's detailed_results.csv, one row per image and class, for point, box and text prompts alike
DETAIL_COLUMNS = ["image_id", "class", "strategy", "multimask", "points", "point_labels", "box", "score", "iou",
                  "intersection", "union"]


@dataclass
class RunRecord:
    """run.json: the facts every stage records (None: not one this stage has, left out of the file), and the
    stage's own ``fields`` (a zero-shot run's strategy, a head's epochs, ...). Written once, by the stage
    skeleton (``stage.StageRun.finish``); read by the report. Older records read as they are."""

    stage: str
    status: str = "complete"
    started: str | None = None
    seconds: float | None = None
    images: int | None = None
    classes: str | None = None
    cache: str | None = None
    split: str | None = None
    device: str | None = None
    fingerprint: str | None = None
    random_weights: bool | None = None
    encoder_passes: int | None = None
    summary: list | None = None
    provenance: dict | None = None
    config: dict | None = None
    out: str | None = None
    fields: dict = field(default_factory=dict)
    order: list[str] = field(default_factory=list, repr=False)  # run.json's key order (from_json's, then the rest)

    def to_json(self) -> dict:
        common = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _OWN}
        values = {**{k: v for k, v in common.items() if v is not None}, **self.fields}
        keys = [k for k in self.order if k in values] + [k for k in values if k not in self.order]
        return {k: values[k] for k in keys}

    @classmethod
    def from_json(cls, data: dict) -> "RunRecord":
        """From run.json's dict; keys given as None are placeholders that keep their place in the key order."""
        names = {f.name for f in dataclasses.fields(cls)} - _OWN
        return cls(**{k: v for k, v in data.items() if k in names},
                   fields={k: v for k, v in data.items() if k not in names}, order=list(data))

    @classmethod
    def read(cls, run_dir: str | Path) -> "RunRecord":
        return cls.from_json(read_record(run_dir))

    def get(self, key: str, default=None):
        """A key as run.json has it (common or the stage's own): stages' labels read records this way."""
        return self.to_json().get(key, default)

    def __getitem__(self, key: str):
        data = self.to_json()
        if key not in data:
            raise KeyError(key)
        return data[key]


_OWN = {"fields", "order"}


def read_record(run_dir: str | Path) -> dict:
    """run.json, with one-line errors for a missing, corrupt or foreign record."""
    path = Path(run_dir) / RUN_RECORD
    if not path.is_file():
        raise SamcacheError(f"{run_dir} is not a samcache run folder (no {RUN_RECORD})")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SamcacheError(f"{path} is unreadable or corrupt ({type(exc).__name__}); replace the run with "
                            f"--overwrite, or remove the folder") from None
    if not isinstance(record, dict) or "stage" not in record:
        raise SamcacheError(f"{path} is not a samcache run record (no 'stage')")
    return record


def write_record(out_dir: str | Path, record: "dict | RunRecord") -> None:
    record = record.to_json() if isinstance(record, RunRecord) else record
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
