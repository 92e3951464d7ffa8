"""Damaged chunks: one line naming the split, rows and array, and a record of the damage readers came across.

A chunk file that no longer decodes (truncated, overwritten; zstd, blosc and zarr's reshape each fail
their own way) becomes ``DamagedRows``. Readers never write into the store (it may be read-only, or an
HDF5 file), so what they saw goes to ``.<name>.<split>.damage.json`` beside it (like the lock files),
written atomically and best-effort. ``info`` and ``extract`` show that record; ``samcache verify``
replaces it by what a read of every row found, and ``extract`` drops the rows it re-encodes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from samcache.cache.locks import beside, is_remote
from samcache.errors import SamcacheError
from samcache.fileio import write_text

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


class CheckedArray:
    """A split's array (zarr, or the HDF5 adapter) whose damaged chunks fail as ``DamagedRows`` and are noted
    in the damage record. Everything else (shape, dtype, chunks, ...) is the array's own."""

    def __init__(self, array, cache: str, split: str, name: str, h5: bool = False):
        self.array, self.cache, self.split, self.name, self.h5 = array, str(cache), split, name, h5

    def __getattr__(self, attr):
        if attr == "array":  # not set yet (copy, unpickling): no endless lookup
            raise AttributeError(attr)
        return getattr(self.array, attr)

    def __getitem__(self, key):
        return self._read(self.array.__getitem__, key)

    @property
    def oindex(self) -> "_Orthogonal":
        return _Orthogonal(self)

    def _read(self, read, key):
        try:
            return read(key)
        except Exception as exc:
            if not is_damage(exc):
                raise
            if isinstance(exc, DamagedRows):  # the HDF5 adapter names its rows itself
                if exc.damage is not None:
                    note_damage(self.cache, self.split, exc.damage)
                raise
            found = locate(self.array.__getitem__, key, self.array)
            if found is None:  # every chunk reads back: not damage
                raise
        damage = Damage(self.name, found[0], found[1], cause_of(found[2]))
        note_damage(self.cache, self.split, damage)
        raise damage_error(self.cache, self.split, damage, self.h5)


class _Orthogonal:
    def __init__(self, checked: CheckedArray):
        self.checked = checked

    def __getitem__(self, rows):
        return self.checked._read(self.checked.array.oindex.__getitem__, rows)


# -- the record beside the store ------------------------------------------------------------------------

def _record_path(cache: str, split: str):
    return None if is_remote(cache) else beside(cache, f".{split}.damage.json")


def read_record(cache: str, split: str) -> list[Damage]:
    """The damage noted for ``split`` (none if there is no record, or it cannot be read)."""
    path = _record_path(cache, split)
    try:
        entries = json.loads(path.read_text())["damage"] if path is not None and path.is_file() else []
        return [Damage(**entry) for entry in entries]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def write_record(cache: str, split: str, damage: list[Damage]) -> None:
    """Replace the record (none left: remove it). Best-effort: a read-only folder keeps no record."""
    path = _record_path(cache, split)
    if path is None:
        return
    try:
        if damage:
            unique = sorted(set(damage), key=lambda d: (d.first, d.array))
            write_text(path, json.dumps({"split": split, "damage": [asdict(d) for d in unique]}, indent=1) + "\n")
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def note_damage(cache: str, split: str, damage: Damage) -> None:
    """Add what a reader came across (two processes noting at once may keep only one: the error still says it)."""
    held = read_record(cache, split)
    if not any((d.array, d.first, d.last) == (damage.array, damage.first, damage.last) for d in held):
        write_record(cache, split, [*held, damage])


def drop_rows(cache: str, split: str, rows: set[int], arrays: tuple[str, ...], everything: bool = False) -> None:
    """Forget the damage of ``arrays`` in ``rows`` (extract re-encodes them), or all of it (a split recreated)."""
    held = read_record(cache, split)
    kept = [] if everything else [d for d in held if not (d.array in arrays and d.first in rows and d.last in rows)]
    if len(kept) != len(held):
        write_record(cache, split, kept)


def describe_record(cache: str, split: str, damage: list[Damage], h5: bool = False) -> str | None:
    """One line for ``info`` and ``extract``: which rows and arrays, and the command to run next."""
    if not damage:
        return None
    rows = sorted({r for d in damage for r in range(d.first, d.last + 1)})
    arrays = ", ".join(sorted({d.array for d in damage}))
    shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
    plural = "s" if len(rows) > 1 else ""
    where = f"(row{plural} {shown}: {arrays})"
    if all(d.found_by == VERIFY for d in damage):
        if h5:
            return (f"{split}: {len(rows)} damaged row{plural} found by verify {where}; the file is read-only: "
                    f"export it again")
        return (f"{split}: {len(rows)} damaged row{plural} found by verify {where}; run `samcache verify --cache "
                f"{cache} --split {split} --repair`, then `samcache extract` re-encodes {'them' if plural else 'it'}")
    return (f"{split}: {len(rows)} damaged row{plural} seen {where}; run `samcache verify --cache {cache} "
            f"--split {split}`")
