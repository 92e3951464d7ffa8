"""The recipes in docs/ run as written: reading a cache without samcache gives what plain zarr reads, and the
random-weight checkpoints load in upstream's own loaders."""

import numpy as np
import pytest
import zarr

from conftest import invoke
from docs_text import code


def test_the_plain_h5py_recipe_reads_an_export_as_zarr_holds_it(cache16, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    invoke("export", cache16, "cityscapes.h5", "--split", "val", check=True)
    scope: dict = {}
    exec(compile(code("h5py-read"), "docs/cache-format.md", "exec"), scope)  # noqa: S102 - the recipe itself
    val = zarr.open_group(str(cache16), mode="r")["val"]
    assert scope["attrs"]["main_feature"] == "embeddings" and scope["attrs"]["samcache_format"] == 3
    assert np.array_equal(scope["embedding"], val["embeddings"][0])
    assert np.array_equal(scope["labels"], val["labels"][0])  # one size: the crop is the whole chunk
    assert list(scope["image_ids"]) == list(val["image_ids"][:]) and np.array_equal(scope["done"], val["done"][:])


@pytest.mark.slow  # builds and saves a random ViT-B (360 MB)
def test_the_random_checkpoint_recipe_writes_files_the_official_loaders_take(tmp_path, monkeypatch):
    """docs/testing.md's recipe: segment-anything's and sam2's own builders load what it saves."""
    import torch
    from segment_anything import sam_model_registry

    from samcache.features.checkpoints import identify_checkpoint

    monkeypatch.chdir(tmp_path)
    exec(compile(code("random-checkpoints"), "docs/testing.md", "exec"), {})  # noqa: S102 - the recipe itself
    assert identify_checkpoint("sam_vit_b_random.pth") == "vit_b"
    assert identify_checkpoint("sam2.1_hiera_tiny_random.pt") == "sam2.1_hiera_t"
    sam = sam_model_registry["vit_b"](checkpoint="sam_vit_b_random.pth")  # upstream's loader, strict
    saved = torch.load("sam_vit_b_random.pth", weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in sam.state_dict().items())
