"""Damaged chunks: one line naming the split, rows and array (``damage_notes.py`` keeps the record of them).

A chunk file that no longer decodes (truncated, overwritten; zstd, blosc and zarr's reshape each fail
their own way) becomes ``DamagedRows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samcache.errors import SamcacheError

READER, VERIFY = "reader", "verify"  # who found a damage: a command that came across it, or samcache verify


@dataclass(frozen=True)
class Damage:
    """Rows ``first..last`` of ``array`` cannot be read (one chunk: one row, or a metadata chunk's rows)."""

    array: str
    first: int
    last: int
    cause: str
    found_by: str = READER

    @property
    def rows(self) -> str:
        return f"row {self.first}" if self.first == self.last else f"rows {self.first}-{self.last}"


class DamagedRows(SamcacheError):
    """A read that hit a damaged chunk. Constructible from the message alone: PyTorch re-raises a
    DataLoader worker's error as ``type(exc)(text)``."""

    def __init__(self, message: str, damage: Damage | None = None):
        super().__init__(message)
        self.damage = damage


def damage_error(cache: str, split: str, damage: Damage, h5: bool) -> DamagedRows:
    verify = f"`samcache verify --cache {cache} --split {split}` lists every damaged row"
    if h5:
        advice = f"the file is damaged: export it again ({verify})"
    elif damage.first == damage.last:  # one image's chunk: re-encoding rewrites it
        advice = (f"the cache is damaged: {verify}; `samcache verify --cache {cache} --split {split} --repair` "
                  f"marks them for `samcache extract` to re-encode")
    else:
        advice = f"the cache is damaged: {verify}"
    return DamagedRows(f"{cache}: cannot read {split}/{damage.array} {damage.rows} ({damage.cause}); {advice}",
                       damage)


def is_damage(exc: BaseException) -> bool:
    """What a chunk that does not decode raises (numcodecs: RuntimeError, zarr's reshape: ValueError, h5py:
    OSError); not a permission problem, a bad index or a lack of memory."""
    if isinstance(exc, DamagedRows):
        return True
    return isinstance(exc, (RuntimeError, ValueError, OSError)) and not isinstance(exc, PermissionError)


def cause_of(exc: BaseException) -> str:
    if isinstance(exc, DamagedRows) and exc.damage is not None:
        return exc.damage.cause
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def chunk_rows(array) -> int:
    """Rows per chunk: 1 for the per-image arrays, up to schema.META_CHUNK for ids and sizes."""
    chunks = getattr(array, "chunks", None) or array.shape
    return max(1, int(chunks[0]))


def _rows_of(key, length: int) -> list[int]:
    if isinstance(key, tuple):
        key = key[0] if key else slice(None)
    if isinstance(key, (int, np.integer)):
        return [int(key) % length] if length else []
    if isinstance(key, slice):
        return list(range(*key.indices(length)))
    try:
        return sorted({int(r) for r in np.asarray(key).ravel()})
    except (TypeError, ValueError):
        return list(range(length))


def locate(read, key, array) -> tuple[int, int, BaseException] | None:
    """Re-read the chunks that ``key`` touches one by one: (first row, last row, error) of the first one that
    fails, or None when all read back (the error was not a damaged chunk)."""
    length, step = int(array.shape[0]), chunk_rows(array)
    for start in sorted({row // step * step for row in _rows_of(key, length)}):
        stop = min(start + step, length)
        try:
            read(slice(start, stop))
        except Exception as exc:
            if is_damage(exc):
                return start, stop - 1, exc
            raise
    return None
