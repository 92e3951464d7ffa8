"""`samcache info`: what a cache holds, as text."""

from __future__ import annotations

from samcache.cache.damage import DamagedRows
from samcache.cache.damage_notes import describe_record, read_record
from samcache.cache.reader import open_cache
from samcache.cache.stores import kind_of
from samcache.cache.schema import package_versions
from samcache.cache.store import partial_kind, split_state
from samcache.messages import RANDOM_WEIGHTS_NOTE, count


def describe_cache(path: str) -> str:
    cache = open_cache(path)
    attrs = cache.attrs
    written_by = "".join(f", {name} {v}" for name, v in package_versions(attrs).items())
    lines = [f"cache {path}  (format {attrs['samcache_format']}, samcache {attrs.get('samcache_version')}{written_by})",
             f"store: {kind_of(path).capabilities()}",
             f"fingerprint: {cache.fingerprint.describe()}",
             f"dataset: {cache.dataset.domain} ({cache.dataset.labels_are})",
             f"family {cache.family}: " + ", ".join(f"{name} {tuple(shape)}" for name, shape in
                                                   cache.feature_shapes.items()) + " per image"]
    if cache.fingerprint.random_weights:
        lines.append(RANDOM_WEIGHTS_NOTE)
    lines.append(f"{'split':<10}{'images':>8}{'done':>12}{'MiB':>10}{'MiB/img':>9}  size        fingerprint")
    total, damage = 0, []
    for name in cache.splits:
        split = cache.split(name)
        nbytes = split.nbytes_stored()
        total += nbytes
        try:
            done, expected = split.progress()
        except DamagedRows as exc:  # ids or done flags that do not read: the split cannot be counted
            lines.append(f"{name:<10}{'?':>8}{'?':>12}  {exc.damage.array} {exc.damage.rows} cannot be read: see below")
            damage.append(describe_record(path, name, read_record(path, name) or [exc.damage],
                                          not kind_of(path).writable))
            continue
        damage.append(describe_record(path, name, read_record(path, name), not kind_of(path).writable))
        same = "same" if split.fingerprint == cache.fingerprint else f"STALE {split.fingerprint.describe()}"
        size = f"{split.attrs['width']}x{split.attrs['height']}"
        if len({tuple(s) for s in split.original_sizes.tolist()}) > 1:  # mixed: the largest bounds them
            size = f"<={size}"
        dropped = (f"  ({count(len(split.dropped), 'image')} dropped from the dataset: files gone, never encoded, "
                   f"not counted)" if split.dropped else "")
        if (split.listed or 0) > len(split):  # extract --limit: Stage 2 then scores a subset
            dropped += (f"  (subset: {len(split)} of the {split.listed} images in the data folder; extract "
                        f"without --limit adds the rest)")
        lines.append(f"{name:<10}{expected:>8}{f'{done}/{expected}':>12}{nbytes / 2**20:>10.1f}"
                     f"{nbytes / 2**20 / max(done, 1):>9.2f}  {size:<11} {same}{dropped}")
    for name in cache.unfinished_splits:
        what = ("deletion interrupted: run `samcache delete-split` again" if partial_kind(cache.root[name]) == "delete"
                else "creation interrupted: re-run extract for this split")
        lines.append(f"{name:<10}{'-':>8}{'-':>12}  {what}")
    for name in sorted(n for n in cache.root.keys() if split_state(cache.root, n) == "foreign"):
        empty = not dict(cache.root[name].attrs) and not list(cache.root[name].keys())
        lines.append(f"{name:<10}{'-':>8}{'-':>12}  " + ("an empty group, not made by samcache: `extract --split "
                     f"{name}` may fill it" if empty else "not made by samcache: left alone"))
    lines.append(f"total on disk: {total / 2**20:.1f} MiB")
    lines += [f"damage: {line}" for line in damage if line]
    return "\n".join(lines)
