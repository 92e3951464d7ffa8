"""The report's cost table: what each stage spent, and what re-running the encoder would have cost."""

from __future__ import annotations

from samcache.cache.reader import open_cache
from samcache.errors import SamcacheError
from samcache.pipeline.stage_registry import stage_of


def encoder_seconds_per_image(cache: str) -> tuple[float | None, list[dict]]:
    """Mean measured encoder s/img over the cache's extraction runs, and one cost row per split."""
    rows, total_s, total_n = [], 0.0, 0
    try:
        cache_obj = open_cache(cache)
    except SamcacheError:
        return None, rows
    for name in cache_obj.splits:
        split = cache_obj.split(name)
        runs = split.attrs.get("runs", [])
        split_s = sum(r["encoder_seconds_per_image"] * r["images"] for r in runs if r.get("encoder_seconds_per_image"))
        split_n = sum(r["images"] for r in runs if r.get("encoder_seconds_per_image"))
        total_s, total_n = total_s + split_s, total_n + split_n
        done = int(split.done_mask().sum())
        rows.append({"stage": f"extract {name}", "model": split.fingerprint.model_type,
                     "encoder_passes": sum(r["images"] for r in runs),
                     "wall_s": f"{sum(r['seconds'] for r in runs):.1f}", "seed_reencode_s": "",
                     "cache_mib": f"{split.nbytes_stored() / 2**20:.1f}",
                     "mib_per_image": f"{split.nbytes_stored() / 2**20 / max(done, 1):.2f}",
                     "encoder_s_per_image": f"{split_s / split_n:.3f}" if split_n else "",
                     "device": ", ".join(sorted({r["device"] for r in runs}))})
    return (total_s / total_n if total_n else None), rows


def images_the_seed_encodes(record: dict) -> int:
    """Encoder passes the seed workflow needs for this stage: every image, unless the stage declares otherwise
    (the head: every train and val image, every epoch)."""
    count = stage_of(record["stage"]).seed_images
    return count(record) if count is not None else int(record.get("images", 0))


def cost_rows(records: list[dict], labels: list[str]) -> tuple[list[dict], dict[str, float | None]]:
    caches = list(dict.fromkeys(r["cache"] for r in records))
    rows, t_enc = [], {}
    for cache in caches:
        t_enc[cache], split_rows = encoder_seconds_per_image(cache)
        rows += [{**row, "stage": row["stage"] + (f" ({cache})" if len(caches) > 1 else "")} for row in split_rows]
    for r, label in zip(records, labels):
        t, images = t_enc.get(r["cache"]), images_the_seed_encodes(r)
        rows.append({"stage": label, "model": model_of(r),
                     "encoder_passes": r.get("encoder_passes", ""), "wall_s": f"{r['seconds']:.1f}",
                     "seed_reencode_s": f"{images * t:.1f}" if t and images else "", "device": r.get("device", "")})
    return rows, t_enc


def model_of(record: dict) -> str:
    """The model type a run decoded with or trained on (its cache's fingerprint: type/weights/dtype/precision)."""
    return str(record.get("fingerprint") or "").split("/")[0]


COLUMNS = ["stage", "model", "encoder_passes", "wall_s", "seed_reencode_s", "cache_mib", "mib_per_image",
           "encoder_s_per_image", "device"]
