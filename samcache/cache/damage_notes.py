"""What readers came across: arrays whose damaged chunks fail in one line, and a record of that damage.

Readers never write into the store (it may be read-only, or an HDF5 file), so what they saw goes to
``.<name>.<split>.damage.json`` beside it (like the lock files; where the store kind has a place for notes),
written atomically and best-effort. ``info`` and ``extract`` show that record; ``samcache verify`` replaces it
by what a read of every row found, and ``extract`` drops the rows it re-encodes.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from samcache.cache.damage import VERIFY, Damage, DamagedRows, cause_of, damage_error, is_damage, locate
from samcache.cache.stores import kind_of
from samcache.fileio import write_text


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
    return kind_of(cache).note_path(cache, f".{split}.damage.json")


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
