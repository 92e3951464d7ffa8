"""samcache: run SAM's image encoder once, keep the embeddings in Zarr, reuse them.

The public API lives in the subpackages; the most used entry points are re-exported
lazily here so that `import samcache` stays cheap.
"""

__version__ = "0.1.0"


def open_cache(path, mode="r"):  # noqa: D103 - thin re-export
    from samcache.cache.reader import open_cache as _open

    return _open(path, mode=mode)
