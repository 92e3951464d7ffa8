"""samcache: run SAM's image encoder once, keep its features in Zarr (or HDF5), decode and train from them.

The notebook API (the CLI is a thin layer over it)::

    import samcache
    cache = samcache.open_cache("cache/cityscapes_vit_h.zarr")    # no torch imported
    val = cache.split("val")
    maps = val.features(val.image_ids[0])                           # {"embeddings": (256, 64, 64)}
    predictor = samcache.predictor(cache, val, val.image_ids[0], "checkpoints/sam_vit_h_4b8939.pth")
    dec = samcache.Decoder(cache, "checkpoints/sam_vit_h_4b8939.pth")
    masks, scores, low_res = dec.predict(val, val.image_ids[0], points=[[1000, 500]], labels=[1])
    model, metrics = samcache.fit_head(cache, train="train", val="val", epochs=20)
    ious = samcache.evaluate_head(model, cache, "val")
    masks = samcache.everything(cache, "val", val.image_ids[0], "checkpoints/sam_vit_h_4b8939.pth")  # SAM's AMG

Names are imported on first use, so ``import samcache`` stays light.
"""

__version__ = "0.4.0"  # recorded in every cache and run as the writer's version

__all__ = ["__version__", "open_cache", "Cache", "CacheSplit", "predictor", "set_precomputed", "Decoder",
           "PromptRequest", "everything", "fit_head", "evaluate_head", "families", "Family", "register_family", "register_strategy",
           "SamcacheError"]

_LAZY = {
    "open_cache": "samcache.cache.reader",
    "Cache": "samcache.cache.reader",
    "CacheSplit": "samcache.cache.reader",
    "predictor": "samcache.cache.predictors",
    "set_precomputed": "samcache.cache.predictors",
    "Decoder": "samcache.evaluation.decoding",
    "PromptRequest": "samcache.evaluation.requests",
    "everything": "samcache.evaluation.everything",
    "fit_head": "samcache.pipeline.train_head",
    "evaluate_head": "samcache.evaluation.heads",
    "Family": "samcache.features.families",
    "register_strategy": "samcache.evaluation.strategies",
    "SamcacheError": "samcache.errors",
}


def __getattr__(name: str):
    import importlib

    if name == "families":
        from samcache.features.families import FAMILIES

        return dict(FAMILIES)
    if name == "register_family":
        from samcache.features.families import register

        return register
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'samcache' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
