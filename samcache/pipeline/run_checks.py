"""What a run folder must be before a command writes to it: not what the command reads, not inside a
dataset, and new, empty or (with --overwrite) an earlier samcache run; each refusal is one line."""

from __future__ import annotations

import os
from pathlib import Path

from samcache.errors import SamcacheError
from samcache.pipeline.runs import RUN_RECORD, SET_ASIDE, read_record


def _inside(child: Path, parent: Path) -> bool:
    child, parent = Path(os.path.realpath(child)), Path(os.path.realpath(parent))
    return child == parent or parent in child.parents


def _interrupted(record: dict, path: Path) -> str:
    """How a record left by a killed command reads to the user ('' for a finished run)."""
    if record.get("status") != "running":
        return ""
    done = record.get("epochs_done")
    if record.get("stage") == "head" and done:
        return f"after epoch {done}: continue it with --resume {path}, or pass --overwrite to replace it"
    return "before it finished (it cannot resume): pass --overwrite to replace it"


def check_overlap(path: Path, reads: list[str | Path]) -> None:
    """Before the folder lock: a refused --out inside a cache must not leave a lock file in it. Nor may a run
    land inside the dataset a cache was extracted from (samcache writes nothing there)."""
    for source in reads:
        if source and Path(source).exists() and (_inside(path, source) or _inside(source, path)):
            raise SamcacheError(f"--out {path} overlaps {source}, which this command reads; choose another --out")
        for split, data in _data_roots(source):
            if _inside(path, data):
                raise SamcacheError(f"--out {path} lies inside the dataset {data} (split {split} of {source} was "
                                    f"extracted from it); samcache writes nothing there: choose another --out")


def _data_roots(source) -> list[tuple[str, Path]]:
    """(split, data root) of every split of ``source`` when it is a samcache cache (else nothing)."""
    from samcache.cache.reader import open_cache

    try:
        cache = open_cache(str(source))
        roots = [(name, cache.root[name].attrs.get("data_root")) for name in cache.splits]
    except Exception:  # not a cache (a run folder, a checkpoint): nothing to add
        return []
    return [(name, Path(root)) for name, root in roots if root and Path(root).is_dir()]


def check_out(path: Path, stage: str, overwrite: bool) -> None:
    if path.is_file():
        raise SamcacheError(f"--out {path} is a file")
    if not path.is_dir() or not any(p for p in path.iterdir() if p.name != SET_ASIDE):
        return
    if not (path / RUN_RECORD).is_file():
        raise SamcacheError(f"--out {path} is not empty and is not a samcache run folder; choose a new or empty "
                            f"folder")
    if not overwrite:
        try:
            record = read_record(path)
            held = record["stage"]
        except SamcacheError:
            record, held = {}, "(damaged record)"
        interrupted = _interrupted(record, path)
        if interrupted:
            raise SamcacheError(f"--out {path} holds a samcache {held} run that was interrupted {interrupted}")
        more = f", or --resume {path} to continue it" if held == "head" and stage == "head" else ""
        raise SamcacheError(f"--out {path} already holds a samcache {held} run; pass --overwrite to replace it{more}")
