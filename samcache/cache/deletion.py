"""`samcache delete-split`: remove one split of a Zarr cache, samcache's own arrays only.

The split is marked 'partial' (deletion) before its first array goes, so a kill at any moment leaves a
split that readers refuse and that running the command again removes (``store.delete_split``). A split
being extracted or exported is refused (its lock); readers never see half a split as complete.
"""

from __future__ import annotations

from dataclasses import dataclass

from samcache.cache.damage_notes import drop_rows
from samcache.cache.locks import cache_lock, split_lock
from samcache.cache.store import delete_split, open_root, ready_splits, split_state
from samcache.cache.stores import kind_of
from samcache.errors import SamcacheError


@dataclass(frozen=True)
class Deleted:
    split: str
    images: int  # rows the split held
    nbytes: int  # bytes its arrays held on the store
    finished: bool  # False: it completed a deletion (or creation) that had been cut short


def split_summary(cache: str, split: str) -> tuple[int, int]:
    """(rows, bytes stored) of a split, for the confirmation line."""
    group = _split_group(cache, split, mode="r")
    return int(dict(group.attrs).get("n_images", 0)), sum(int(a.nbytes_stored()) for _, a in group.arrays())


def _split_group(cache: str, split: str, mode: str):
    if not kind_of(cache).writable:
        raise SamcacheError(f"{cache} is {kind_of(cache).as_cache}, which samcache reads only; export again without that split "
                            f"(`samcache export --split ...`) instead")
    root = open_root(cache, mode=mode)
    state = split_state(root, split)
    if state == "absent":
        raise SamcacheError(f"no split '{split}' in cache {cache} (has: {', '.join(ready_splits(root)) or 'none'})")
    if state == "foreign":
        raise SamcacheError(f"{cache} holds a node '{split}' that samcache did not make; leaving it alone")
    return root[split]


def delete_cache_split(cache: str, split: str) -> Deleted:
    """Delete ``split`` of ``cache`` under its lock (refused while extract or export holds it)."""
    _split_group(cache, split, mode="r")  # one line for a wrong cache or split, before any lock file is made
    with split_lock(cache, split, purpose="delete-split"), cache_lock(cache):
        root = open_root(cache, mode="r+")
        group = _split_group(cache, split, mode="r+")
        finished = split_state(root, split) == "ready"
        images = int(dict(group.attrs).get("n_images", 0))
        nbytes = sum(int(a.nbytes_stored()) for _, a in group.arrays())
        delete_split(root, split)
        drop_rows(cache, split, set(), (), everything=True)  # damage noted of the split goes with it
    return Deleted(split, images, nbytes, finished)
