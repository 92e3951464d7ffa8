"""`samcache verify`: read every row of every array of a split; list the damaged ones; with --repair, mark them
not done so that a plain `samcache extract` re-encodes them.

What counts as damage: a chunk that does not decode (``cache.damage.is_damage``), in any row of any array,
and a feature map of a done row that reads as all zeros (its chunk file is missing: zarr and h5py then return
the fill value). Rows not done are read too: extract would rewrite them, but export copies them. A chunk of an uncompressed cache (``--codec none``) overwritten with
bytes of the same length decodes fine and cannot be told from data.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from samcache.cache.damage import VERIFY, Damage, chunk_rows, cause_of, is_damage
from samcache.cache.damage_notes import write_record
from samcache.cache.locks import split_lock
from samcache.cache.reader import Cache, open_cache
from samcache.cache.schema import GT_ARRAYS
from samcache.cache.stores import kind_of
from samcache.errors import SamcacheError
from samcache.messages import count
from samcache.pipeline.configs import VerifyConfig
from samcache.procs import check_interrupt

META_ARRAYS = ("image_ids", "original_sizes", "input_sizes")  # many rows per chunk: not repaired in place


@dataclass
class SplitCheck:
    """What verify found in one split: ``damage`` lists every unreadable chunk, ``repaired`` the rows marked
    not done."""

    split: str
    rows: int
    done: int
    damage: list[Damage] = field(default_factory=list)
    repaired: list[int] = field(default_factory=list)
    ids: list[str] | None = None

    @property
    def unrepaired(self) -> list[Damage]:
        return [d for d in self.damage if d.first not in self.repaired or d.array in META_ARRAYS]

    def lines(self) -> list[str]:
        """One line per damaged row (or per damaged chunk of ids and sizes)."""
        by_row: dict[tuple[int, int], list[Damage]] = {}
        for d in self.damage:
            by_row.setdefault((d.first, d.last), []).append(d)
        out = []
        for (first, last), found in sorted(by_row.items()):
            name = f" ({self.ids[first]})" if self.ids and first == last and first < len(self.ids) else ""
            out.append(f"{self.split} {found[0].rows}{name}: " + "; ".join(f"{d.array}: {d.cause}" for d in found))
        return out


def _read(array, key) -> tuple[object, BaseException | None]:
    try:
        return array[key], None
    except Exception as exc:
        if not is_damage(exc):
            raise
        return None, exc


def check_split(cache: Cache, name: str, progress: bool) -> SplitCheck:
    """Read every chunk of split ``name`` (plain arrays: no damage record is written while reading)."""
    group = cache.root[name]
    n = int(dict(group.attrs).get("n_images", 0))
    damage: list[Damage] = []
    chunks: dict[str, list] = {}  # array -> the values of each chunk (None: damaged)
    for array_name in (*META_ARRAYS, "done"):  # chunk by chunk: ids and sizes hold many rows per chunk
        array, chunks[array_name] = group[array_name], []
        step = chunk_rows(array)
        for start in range(0, n, step):
            stop = min(start + step, n)
            value, exc = _read(array, slice(start, stop))
            if exc is not None:
                damage.append(Damage(array_name, start, stop - 1, cause_of(exc), VERIFY))
            chunks[array_name].append(np.zeros(stop - start, bool) if exc is not None else np.asarray(value))
    done = np.concatenate(chunks["done"]).astype(bool) if n else np.zeros(0, bool)  # damaged: not done
    ids = None if any(d.array == "image_ids" for d in damage) else \
        [str(i) for part in chunks["image_ids"] for i in part.tolist()]
    features = tuple(cache.feature_shapes)
    arrays = {a: group[a] for a in (*features, *GT_ARRAYS)}
    for row in tqdm(range(n), unit="row", desc=f"verify {name}", disable=not progress):
        check_interrupt()
        for array_name, array in arrays.items():
            value, exc = _read(array, row)
            if exc is not None:
                damage.append(Damage(array_name, row, row, cause_of(exc), VERIFY))
            elif array_name in features and done[row] and not np.any(value):
                damage.append(Damage(array_name, row, row, "reads as all zeros: its chunk is missing", VERIFY))
    return SplitCheck(name, n, int(done.sum()), damage, ids=ids)


def repair(cache: str, check: SplitCheck) -> None:
    """Mark each damaged per-image row not done, then write the fill value over its damaged chunks (zarr then
    removes those chunk files: the row reads as never encoded, and export copies it); extract re-encodes it.
    In that order, so a kill leaves no done row with cleared data. Ids and sizes are not repaired here."""
    rows: dict[int, set[str]] = {}
    for d in check.damage:
        if d.array not in META_ARRAYS:
            rows.setdefault(d.first, set()).add(d.array)
    if not rows:
        return
    group = kind_of(cache).open(str(cache), "r+")[check.split]
    try:
        for row, arrays in sorted(rows.items()):
            group["done"][row] = False
            for name in sorted(arrays - {"done"}):
                array = group[name]
                array[row] = np.zeros(array.shape[1:], array.dtype)
            check.repaired.append(row)
    except PermissionError as exc:
        raise SamcacheError(f"cannot repair {cache}: {exc.strerror or exc} ({exc.filename})") from None


def verify(cfg: VerifyConfig, progress: bool = True, echo=print) -> list[SplitCheck]:
    """Check ``cfg.split`` (default: every split) of ``cfg.cache``; ``echo`` gets one line per damaged row.
    Raises a one-line ``SamcacheError`` when damage remains (after --repair: damage it could not repair)."""
    h5 = kind_of(cfg.cache).is_export  # an export: repaired in its Zarr cache, then exported again
    if cfg.repair and h5:
        raise SamcacheError(f"{cfg.cache} is {kind_of(cfg.cache).as_cache}, which samcache only reads: --repair works on the Zarr "
                            f"cache it was exported from (repair that, extract, and export again); leave out "
                            f"--repair to list the damage")
    cache = open_cache(cfg.cache)
    names = [cache.split(cfg.split).name] if cfg.split else cache.splits
    if not names:
        raise SamcacheError(f"cache {cfg.cache} holds no split to verify")
    checks = []
    for name in names:
        lock = split_lock(cfg.cache, name, purpose="repair") if cfg.repair else contextlib.nullcontext()
        with lock:  # --repair: no extraction may write the split meanwhile
            check = check_split(cache, name, progress)
            for line in check.lines():
                echo(line)
            if cfg.repair:
                repair(cfg.cache, check)
            write_record(cfg.cache, name, check.unrepaired)
        checks.append(check)
    return checks


def _damaged_rows(damage: list[Damage]) -> set[int]:
    return {row for d in damage for row in range(d.first, d.last + 1)}


def _rows(rows: list[int]) -> str:
    shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
    return f"row {shown}" if len(rows) == 1 else f"rows {shown}"


def summary(cfg: VerifyConfig, checks: list[SplitCheck]) -> str:
    """The last line: all clean, or what --repair marked; damage that remains is raised as one line."""
    repaired = [f"{c.split}: {count(len(c.repaired), 'damaged row')} marked not done ({_rows(c.repaired)}); "
                f"`samcache extract --split {c.split}` with the settings that built it re-encodes "
                f"{'it' if len(c.repaired) == 1 else 'them'}" for c in checks if c.repaired]
    left = [c for c in checks if c.unrepaired]
    if left:
        damaged = "; ".join(f"{c.split}: {count(len(_damaged_rows(c.unrepaired)), 'damaged row')} of {c.rows}"
                            for c in left)
        meta = [d for c in left for d in c.unrepaired if d.array in META_ARRAYS]
        if meta:
            advice = (f"{meta[0].array} holds many rows per chunk and cannot be repaired in place: extract the "
                      f"split again with `samcache extract --split {left[0].split} --rebuild ...`")
        elif not kind_of(cfg.cache).writable:  # an export: read-only
            advice = "the file is read-only: export it again from its Zarr cache"
        else:
            advice = (f"`samcache verify --cache {cfg.cache}{f' --split {cfg.split}' if cfg.split else ''} --repair` "
                      f"marks them not done, then `samcache extract` re-encodes them")
        raise SamcacheError(" ".join([*repaired, f"damage in {cfg.cache}: {damaged}; {advice}"]))
    clean = ", ".join(f"{c.split} ({c.done}/{c.rows} done)" for c in checks)
    return "\n".join(repaired) if repaired else f"{cfg.cache}: every row of every array reads back: {clean}"
