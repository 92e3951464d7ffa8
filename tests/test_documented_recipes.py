"""The recipes in docs/ that read a cache without samcache run as written and read what plain zarr reads."""

import numpy as np
import zarr

from conftest import invoke
from docs_text import code


def test_the_plain_h5py_recipe_reads_an_export_as_zarr_holds_it(cache16, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    invoke("export", cache16, "cityscapes.h5", "--split", "val", check=True)
    scope: dict = {}
    exec(compile(code("h5py-read"), "docs/cache-format.md", "exec"), scope)  # noqa: S102 - the recipe itself
    val = zarr.open_group(str(cache16), mode="r")["val"]
    assert scope["attrs"]["main_feature"] == "embeddings" and scope["attrs"]["samcache_format"] == 2
    assert np.array_equal(scope["embedding"], val["embeddings"][0])
    assert list(scope["image_ids"]) == list(val["image_ids"][:]) and np.array_equal(scope["done"], val["done"][:])
