"""`samcache delete-split`: asks for --yes, removes only samcache's arrays (checked with plain zarr), is refused
while another process holds the split's lock, and a deletion cut short is refused by readers and finished by
running it again. Also: extract leaves no lock file when it leaves no store."""

from __future__ import annotations

import subprocess
import sys

import pytest
import zarr

from conftest import assert_one_line_error, extract_cfg, invoke, snapshot


@pytest.fixture()
def two_splits(synth_root, tmp_path):
    from samcache.pipeline.extract import extract

    cache = tmp_path / "c.zarr"
    for split in ("train", "val"):
        extract(extract_cfg(synth_root, cache, split, limit=2), progress=False)
    return cache


def test_delete_split_needs_yes_and_removes_only_that_split(two_splits, tmp_path):
    cache = two_splits
    before = snapshot(tmp_path)
    assert_one_line_error(invoke("delete-split", "--cache", cache, "--split", "val"), "2 images", "--yes")
    assert_one_line_error(invoke("delete-split", "--cache", cache, "--split", "nosuch", "--yes"), "no split 'nosuch'")
    assert snapshot(tmp_path) == before
    train = zarr.open_group(str(cache), mode="r")["train"]["embeddings"][:]
    proc = invoke("delete-split", "--cache", cache, "--split", "val", "--yes", check=True)
    assert "deleted split val" in proc.stdout
    root = zarr.open_group(str(cache), mode="r")
    assert "val" not in root and (root["train"]["embeddings"][:] == train).all()
    assert not (tmp_path / ".c.zarr.val.lock").exists()  # nothing left of the split beside the store either
    assert "val" not in invoke("info", "--cache", cache).stdout.split("fingerprint", 2)[-1]


def test_a_foreign_group_is_never_deleted_and_info_names_it(two_splits):
    zarr.open_group(str(two_splits), mode="a").create_group("mine")
    assert_one_line_error(invoke("delete-split", "--cache", two_splits, "--split", "mine", "--yes"),
                          "samcache did not make")
    assert "mine" in zarr.open_group(str(two_splits), mode="r")
    line = next(ln for ln in invoke("info", "--cache", two_splits).stdout.splitlines() if ln.startswith("mine"))
    assert "not made by samcache" in line and "interrupted" not in line


def test_a_split_being_extracted_is_not_deleted(two_splits):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom samcache.cache.locks import split_lock\n"
        f"with split_lock({str(two_splits)!r}, 'val'):\n    print('held', flush=True)\n    time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = invoke("delete-split", "--cache", two_splits, "--split", "val", "--yes")
        assert_one_line_error(proc, "being extracted by another process")
        assert "val" in zarr.open_group(str(two_splits), mode="r")
    finally:
        holder.kill()
        holder.wait()


def test_an_interrupted_deletion_is_refused_by_readers_and_finished_by_a_rerun(two_splits):
    import samcache
    from samcache.cache.store import PARTIAL_MARK

    group = zarr.open_group(str(two_splits), mode="r+")["val"]
    fingerprint = group.attrs["fingerprint"]
    group.attrs.put({PARTIAL_MARK: "delete", "fingerprint": fingerprint})  # what delete_split writes first
    del group["embeddings"]  # ... and killed after the first array
    assert "deletion interrupted" in invoke("info", "--cache", two_splits).stdout
    with pytest.raises(samcache.SamcacheError, match="no split 'val'"):
        samcache.open_cache(str(two_splits)).split("val")
    proc = invoke("delete-split", "--cache", two_splits, "--split", "val", "--yes", check=True)
    assert "finished deleting" in proc.stdout
    assert "val" not in zarr.open_group(str(two_splits), mode="r")


def test_a_refused_extract_into_a_new_cache_leaves_no_store_and_no_lock_file(synth_root, tmp_path):
    from conftest import copy_split

    data = copy_split(synth_root, tmp_path / "d", "val")
    for png in (data / "leftImg8bit").rglob("*.png"):
        png.write_bytes(b"not a png")  # every image unreadable: refused after the locks were taken
    out = tmp_path / "out"
    out.mkdir()
    proc = invoke("extract", "--data", data, "--cache", out / "c.zarr", "--split", "val", "--model-type", "tiny",
                  "--num-workers", "0", "--quiet")
    assert_one_line_error(proc, "no readable image")
    assert list(out.iterdir()) == []


def test_a_refused_export_leaves_nothing_beside_its_file(cache16, tmp_path):
    from samcache.cache.locks import split_lock

    out = tmp_path / "out"
    out.mkdir()
    with split_lock(str(cache16), "val"):  # an extraction of val is running: refused under the export's lock
        assert_one_line_error(invoke("export", cache16, out / "c.h5"), "being extracted")
    assert list(out.iterdir()) == []
