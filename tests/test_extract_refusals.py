"""What extract refuses in an existing cache before writing anything, checked with plain zarr and the files:
another model family beside other splits, another dataset appended to a split, a codec the split does not use,
image files that break Cityscapes' naming rule; and a split whose images left the dataset is complete."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from conftest import assert_one_line_error, copy_split, extract_cfg, invoke, snapshot

EXTRACT = ("--model-type", "tiny", "--num-workers", "0", "--dtype", "float32", "--quiet")


def _extract(data, cache, split="val", *extra):
    return invoke("extract", "--data", data, "--cache", cache, "--split", split, *EXTRACT, *extra)


def test_another_family_beside_other_splits_is_refused_before_anything_is_written(synth_root, tmp_path):
    cache = tmp_path / "c.zarr"
    _extract(synth_root, cache, "val")
    before = snapshot(tmp_path)
    for extra in ([], ["--rebuild"]):
        proc = invoke("extract", "--data", synth_root, "--cache", cache, "--split", "train", "--model-type",
                      "sam3_tiny", "--num-workers", "0", "--quiet", *extra)
        assert_one_line_error(proc, "holds sam features (split val)", "one model family", "delete-split")
    assert snapshot(tmp_path) == before  # not a byte: store, attributes, lock files
    assert "val " in invoke("info", "--cache", cache).stdout


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_a_split_left_by_another_family_stays_visible_as_stale_and_can_be_deleted(synth_root, tmp_path):
    """The state an older samcache left after `extract --rebuild` with another family: the root describes the
    new family, the old split still holds its own arrays."""
    from samcache.cache.schema import Fingerprint, root_attrs
    from samcache.features.weights import WeightsId

    cache = tmp_path / "c.zarr"
    _extract(synth_root, cache, "val")
    old = zarr.open_group(str(cache), mode="r")["val"]["embeddings"][:]
    fp = Fingerprint.make("sam3_tiny", WeightsId(None, 0), "float32", "fp32")
    zarr.open_group(str(cache), mode="r+").attrs.put(root_attrs(fp))
    info = invoke("info", "--cache", cache).stdout
    assert "val" in info and "STALE tiny/" in info
    import samcache

    split = samcache.open_cache(str(cache)).split("val")
    assert np.array_equal(split.features(0)["embeddings"], old[0])  # still readable as what it is
    h5 = tmp_path / "c.h5"
    invoke("export", cache, h5, check=True)
    import h5py

    with h5py.File(h5, "r") as f:
        assert "val" in f and f["val"]["embeddings"].shape == old.shape
    assert_one_line_error(invoke("delete-split", "--cache", cache, "--split", "val"), "--yes")
    assert "val" in zarr.open_group(str(cache), mode="r")
    invoke("delete-split", "--cache", cache, "--split", "val", "--yes", check=True)
    assert "val" not in zarr.open_group(str(cache), mode="r")


def test_another_dataset_is_not_appended_to_a_split_but_moved_data_is_accepted(synth_root, tmp_path):
    from samcache.data.synth import write_synthetic

    base = copy_split(synth_root, tmp_path / "base", "val")
    other = tmp_path / "other"
    write_synthetic(other, {"val": 3}, size=(512, 256), seed=7, progress=False)  # same ids, other scenes
    cache = tmp_path / "c.zarr"
    _extract(base, cache, "val", "--limit", "2")
    before = snapshot(cache)
    assert_one_line_error(_extract(other, cache), f"was extracted from {base}", "labels differ")
    assert snapshot(cache) == before
    fewer = copy_split(base, tmp_path / "fewer", "val")
    next(fewer.glob("leftImg8bit/val/*/synthbergen_000000_000019_leftImg8bit.png")).unlink()
    assert_one_line_error(_extract(fewer, cache), "lacks 1 of the split's 2 cached image", "synthbergen_000000")
    moved = tmp_path / "moved"
    base.rename(moved)  # the same files under a new root: accepted, and recorded
    proc = _extract(moved, cache)
    assert proc.returncode == 0, proc.stderr
    assert "data moved from" in proc.stdout
    group = zarr.open_group(str(cache), mode="r")["val"]
    assert group.attrs["data_root"] == str(moved) and group["done"][:].tolist() == [True, True, True]


def test_codec_of_an_existing_split_is_refused_unless_rebuilt(synth_root, tmp_path):
    cache = tmp_path / "c.zarr"
    _extract(synth_root, cache, "val", "--limit", "1")
    assert_one_line_error(_extract(synth_root, cache, "val", "--codec", "none"), "stored with codec zstd", "--rebuild")
    proc = _extract(synth_root, cache, "val", "--codec", "none", "--rebuild")
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((cache / "val" / "embeddings" / "zarr.json").read_text())
    assert not [c for c in meta["codecs"] if c["name"] == "zstd"]  # plain zarr metadata: no compressor now


def test_image_files_must_follow_the_city_folder_naming_rule(synth_root, tmp_path):
    data = copy_split(synth_root, tmp_path / "d", "val")
    city = data / "leftImg8bit" / "val" / "synthdorf"
    first = sorted(city.iterdir())[0]
    shutil.copy(first, data / "leftImg8bit" / "val" / "synthbergen" / first.name)  # a copy in another city
    cache = tmp_path / "c.zarr"
    assert_one_line_error(_extract(data, cache), "<city>_<seq>_<frame>", "synthbergen/")
    (data / "leftImg8bit" / "val" / "synthbergen" / first.name).unlink()
    (city / "foo_leftImg8bit.png").write_bytes(first.read_bytes())
    assert_one_line_error(_extract(data, cache), "foo_leftImg8bit.png", "<city>_<seq>_<frame>")
    assert not cache.exists() and not list(tmp_path.glob(".c.zarr*"))


def test_an_image_dropped_from_the_dataset_leaves_a_complete_split(synth_root, tmp_path):
    from samcache.pipeline.extract import extract

    data = copy_split(synth_root, tmp_path / "d", "val")
    cache = tmp_path / "c.zarr"
    extract(extract_cfg(data, cache, "val"), progress=False)
    group = zarr.open_group(str(cache), mode="r+")["val"]
    last = str(group["image_ids"][2])
    group["done"][2] = False  # as if the run had been killed before this image was written
    for path in data.rglob(f"{last}_*.png"):
        path.unlink()
    proc = _extract(data, cache)
    assert proc.returncode == 0 and "dropped 1 image" in proc.stdout
    info = invoke("info", "--cache", cache).stdout
    assert "2/2" in info and "1 image dropped from the dataset" in info and "subset" not in info
    out = tmp_path / "zs"
    proc = invoke("zero-shot", "--cache", cache, "--split", "val", "--out", out, "--num-workers", "0",
                  "--visualize", "0", "--quiet", check=True)
    assert "subset" not in proc.stderr and "1 image was dropped from the dataset" in proc.stderr
    prov = json.loads((out / "run.json").read_text())["provenance"]
    assert (prov["images"], prov["split_images"], prov["dropped"]) == (2, 2, 1)
