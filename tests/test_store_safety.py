"""The cache never eats the dataset, never stores a lossy read, and survives kills at its creation."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import zarr
from PIL import Image

from conftest import (assert_one_line_error, assert_same_split, copy_split, done_count, extract_cfg, invoke, run_cli,
                      snapshot)
from samcache.cache.hdf5 import export_h5
from samcache.cache.reader import open_cache
from samcache.data.cityscapes import list_images, read_image
from samcache.pipeline.extract import extract

TINY = ["--model-type", "tiny", "--num-workers", "0", "--device", "cpu"]


@pytest.mark.parametrize("inside", ["gtFine", "leftImg8bit", ".", "gtFine/val/synthbergen"])
def test_cache_inside_the_dataset_is_refused_and_the_dataset_survives(synth_root, tmp_path, inside):
    data = copy_split(synth_root, tmp_path / "data", "val")
    before = snapshot(data)
    proc = invoke("extract", "--data", data, "--cache", data / inside, "--split", "val", *TINY)
    assert_one_line_error(proc, "inside the data root")
    assert snapshot(data) == before


def test_non_empty_foreign_folder_is_not_adopted(synth_root, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    proc = invoke("extract", "--data", synth_root, "--cache", foreign, "--split", "val", *TINY)
    assert_one_line_error(proc, "not a samcache cache")
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_group("val")  # a Zarr store samcache did not make
    before = snapshot(plain)
    assert_one_line_error(invoke("extract", "--data", synth_root, "--cache", plain, "--split", "val", *TINY),
                          "not a samcache cache")
    assert snapshot(foreign) == {"notes.txt": b"keep me"} and snapshot(plain) == before


def test_rebuild_deletes_only_what_samcache_made(synth_root, tmp_path):
    cache = tmp_path / "c.zarr"
    extract(extract_cfg(synth_root, cache, "val", limit=1), progress=False)
    (cache / "val" / "README.txt").write_text("user file inside the split group")
    extract(extract_cfg(synth_root, cache, "val", limit=1, dtype="float16", rebuild=True), progress=False)
    assert (cache / "val" / "README.txt").read_text() == "user file inside the split group"
    assert open_cache(cache).split("val").embeddings.dtype == np.float16
    other = tmp_path / "o.zarr"
    extract(extract_cfg(synth_root, other, "train", limit=1), progress=False)
    zarr.open_group(str(other), mode="r+").create_group("val", attributes={"owner": "someone"})
    (other / "val" / "theirs.txt").write_text("not samcache's")
    before = snapshot(other / "val")
    for flags in ([], ["--rebuild"]):
        proc = invoke("extract", "--data", synth_root, "--cache", other, "--split", "val", "--dtype", "float32", *TINY,
                      *flags)
        assert_one_line_error(proc, "node 'val' that samcache did not make")
    assert snapshot(other / "val") == before


def _png16(path, array):
    Image.fromarray(array.astype(np.uint16)).save(path)


def test_lossy_inputs_are_refused_per_image_and_never_done(synth_root, tmp_path):
    data = copy_split(synth_root, tmp_path / "data", "val")
    recs = list_images(data, "val")
    gray = read_image(recs[0].image_path)[..., 0].astype(np.uint16) * 257
    _png16(recs[0].image_path, gray)  # 16-bit grayscale image: read as all-white before
    labels = np.asarray(Image.open(recs[1].label_path)).astype(np.uint16)
    labels[0, 0] = 263  # 16-bit labelIds: 263 % 256 == 7 (road) before
    _png16(recs[1].label_path, labels)
    good = np.asarray(Image.open(recs[2].label_path)).copy()
    bad = good.copy()
    bad[5, 9] = 40  # 8-bit, but not a Cityscapes labelId
    Image.fromarray(bad).save(recs[2].label_path)
    cache = tmp_path / "c.zarr"
    proc = invoke("extract", "--data", data, "--cache", cache, "--split", "val", *TINY)
    assert_one_line_error(proc, "3 image(s) failed")
    assert f"{recs[0].image_path} has PIL mode I;16 (16-bit gray)" in proc.stderr
    assert f"{recs[1].label_path} holds value 263 at (x=0, y=0)" in proc.stderr
    assert f"{recs[2].label_path} holds value 40 at (x=9, y=5)" in proc.stderr
    assert open_cache(cache).split("val").done_mask().tolist() == [False, False, False]


def test_lossless_conversions_are_accepted(synth_root, tmp_path, cache32):
    """RGBA drops alpha; 16-bit RGB keeps the high byte: both give the 8-bit RGB image's embedding."""
    data = copy_split(synth_root, tmp_path / "data", "val")
    recs = list_images(data, "val")
    rgb0, rgb1 = read_image(recs[0].image_path), read_image(recs[1].image_path)
    alpha = np.full(rgb0.shape[:2] + (1,), 77, np.uint8)
    Image.fromarray(np.concatenate([rgb0, alpha], -1)).save(recs[0].image_path)
    _write_rgb16(recs[1].image_path, rgb1.astype(np.uint16) * 256 + 99)
    cache = tmp_path / "c.zarr"
    result = extract(extract_cfg(data, cache, "val"), progress=False)
    assert result.failed == [] and result.n_done == 3
    assert_same_split(cache, cache32, "val")


def _write_rgb16(path, array):
    """A 48-bit RGB PNG (PIL cannot write one): IHDR bit depth 16, colour type 2."""
    import struct
    import zlib

    h, w, _ = array.shape
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_instance_file_that_disagrees_with_labels_is_refused(synth_root, tmp_path):
    data = copy_split(synth_root, tmp_path / "data", "val")
    rec = list_images(data, "val")[0]
    inst = np.asarray(Image.open(rec.instance_path)).astype(np.uint16)
    inst[3, 4] = 26001 if inst[3, 4] != 26001 else 24000
    _png16(rec.instance_path, inst)
    result = extract(extract_cfg(data, tmp_path / "c.zarr", "val"), progress=False)
    assert len(result.failed) == 1 and "disagrees with its labelIds at (x=4, y=3)" in result.failed[0]


@pytest.mark.parametrize("cut", ["group-without-attributes", "attributes-without-arrays", "some-arrays"])
def test_split_cut_short_at_creation_is_recreated_by_a_plain_rerun(synth_root, cache32, tmp_path, cut):
    cache = tmp_path / "c.zarr"
    extract(extract_cfg(synth_root, cache, "train", limit=1), progress=False)
    root = zarr.open_group(str(cache), mode="r+")
    if cut == "group-without-attributes":  # what a kill between create_group and attrs left before
        root.create_group("val")
    else:
        val = root.create_group("val", attributes=dict(root["train"].attrs) | {"n_images": 0, "runs": []})
        if cut == "some-arrays":
            val.create_array("embeddings", shape=(0, 256, 64, 64), chunks=(1, 256, 64, 64), dtype="float32")
    info = invoke("info", "--cache", cache, check=True)
    if cut == "group-without-attributes":  # samcache writes a group with its attributes: this one is not samcache's
        assert "an empty group, not made by samcache" in info.stdout and "interrupted" not in info.stdout
    else:
        assert "creation interrupted" in info.stdout and "train" in info.stdout
    result = extract(extract_cfg(synth_root, cache, "val"), progress=False)
    assert result.n_done == 3
    assert_same_split(cache, cache32, "val")


def test_ctrl_c_while_a_split_is_created_leaves_a_state_a_rerun_completes(synth_root, cache32, tmp_path, monkeypatch):
    cache = tmp_path / "c.zarr"
    calls = {"n": 0}
    original = zarr.Group.create_array

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(zarr.Group, "create_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        extract(extract_cfg(synth_root, cache, "val"), progress=False)
    monkeypatch.setattr(zarr.Group, "create_array", original)
    assert open_cache(cache).unfinished_splits == ["val"]
    assert extract(extract_cfg(synth_root, cache, "val"), progress=False).n_done == 3
    assert_same_split(cache, cache32, "val")


@pytest.mark.slow
def test_real_kill_right_after_the_split_group_appears(synth_root, cache32, tmp_path):
    cache = tmp_path / "k.zarr"
    args = ["extract", "--data", synth_root, "--cache", cache, "--split", "val", "--dtype", "float32", "--attention",
            "upstream",
            "--batch-size", "1", *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "samcache.pipeline.cli", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (cache / "val" / "zarr.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    assert invoke("info", "--cache", cache).returncode == 0
    run_cli(*args, check=True)
    assert_same_split(cache, cache32, "val")


@pytest.mark.slow
def test_second_extractor_of_a_split_stops_and_other_splits_run_in_parallel(synth_root, tmp_path):
    from samcache.data.synth import write_synthetic

    data = tmp_path / "data"
    write_synthetic(data, {"train": 12}, size=(1024, 512), seed=1, progress=False)  # a few seconds of work
    (data / "leftImg8bit" / "val").symlink_to(synth_root / "leftImg8bit" / "val")
    (data / "gtFine" / "val").symlink_to(synth_root / "gtFine" / "val")
    cache = tmp_path / "c.zarr"
    args = lambda split: ["extract", "--data", data, "--cache", cache, "--split", split,  # noqa: E731
                          "--batch-size", "1", *TINY]
    first = subprocess.Popen([sys.executable, "-m", "samcache.pipeline.cli", *map(str, args("train"))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while done_count(cache, "train") < 1 and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    second = invoke(*args("train"))
    still_running = first.poll() is None
    other = invoke(*args("val"))  # another split of the same cache, in parallel
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert still_running, "the first extraction should still hold its lock when the second starts"
    assert_one_line_error(second, "being extracted by another process", str(tmp_path / ".c.zarr.train.lock"))
    assert other.returncode == 0, other.stderr
    train = open_cache(cache).split("train")
    assert train.done_mask().all() and len(train.attrs["runs"]) == 1  # no lost or duplicated run record
    assert train.attrs["runs"][0]["images"] == 12
    assert open_cache(cache).split("val").done_mask().all()


def test_a_failed_image_removed_from_the_data_is_dropped(synth_root, tmp_path):
    data = copy_split(synth_root, tmp_path / "data", "val")
    recs = list_images(data, "val")
    recs[1].image_path.write_bytes(recs[1].image_path.read_bytes()[:2000])  # truncated: header reads, pixels do not
    cache = tmp_path / "c.zarr"
    common = ["extract", "--data", data, "--cache", cache, "--split", "val", *TINY]
    assert_one_line_error(invoke(*common), "1 image(s) failed")
    assert_one_line_error(invoke("zero-shot", "--cache", cache, "--out", tmp_path / "zs"), "2/3 images done")
    for path in (recs[1].image_path, recs[1].label_path, recs[1].instance_path):
        path.unlink()
    proc = invoke(*common, check=True)
    assert "dropped 1 image(s) never encoded" in proc.stdout and recs[1].image_id in proc.stdout
    assert "2/2 done" in proc.stdout
    zs = invoke("zero-shot", "--cache", cache, "--out", tmp_path / "zs", "--visualize", "0", check=True)
    assert "on 2 images" in zs.stdout
    shutil.copytree(synth_root / "leftImg8bit", tmp_path / "restore")  # the image comes back: encoded again
    shutil.copy(tmp_path / "restore" / "val" / recs[1].city / recs[1].image_path.name, recs[1].image_path)
    for path in (recs[1].label_path, recs[1].instance_path):
        shutil.copy(synth_root / "gtFine" / "val" / recs[1].city / path.name, path)
    assert "3/3 done" in invoke(*common, check=True).stdout


def _without_root_privileges():
    """Root ignores file modes; dropping CAP_DAC_OVERRIDE from the bounding set makes it obey them."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop capabilities")


@pytest.mark.slow
def test_read_only_cache_when_adding_a_split(synth_root, tmp_path):
    """A real read-only store: no write permission on the cache or beside it."""
    cache = tmp_path / "ro.zarr"
    extract(extract_cfg(synth_root, cache, "train", limit=1), progress=False)
    for p in [cache, *cache.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    tmp_path.chmod(0o555)  # the lock files beside the cache cannot be created either
    before = snapshot(cache)
    try:
        proc = subprocess.run([sys.executable, "-m", "samcache.pipeline.cli", "extract", "--data", str(synth_root),
                               "--cache", str(cache), "--split", "val", *TINY], capture_output=True, text=True,
                              preexec_fn=_without_root_privileges if os.geteuid() == 0 else None)
    finally:
        tmp_path.chmod(0o755)
        for p in [cache, *cache.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert_one_line_error(proc, "ermission denied")
    assert snapshot(cache) == before


def _limit_file_size():
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))  # writes past 200 bytes fail with EFBIG


@pytest.mark.slow
def test_full_disk_at_store_creation_leaves_nothing(synth_root, tmp_path):
    cache = tmp_path / "full.zarr"
    proc = subprocess.run([sys.executable, "-m", "samcache.pipeline.cli", "extract", "--data", str(synth_root),
                           "--cache", str(cache), "--split", "val", *TINY], capture_output=True, text=True,
                          preexec_fn=_limit_file_size)
    assert_one_line_error(proc, "File too large")
    assert not cache.exists()


@pytest.mark.slow
def test_full_disk_when_writing_a_run_folder_leaves_no_empty_config(cache16, tmp_path):
    out = tmp_path / "zs"
    proc = subprocess.run([sys.executable, "-m", "samcache.pipeline.cli", "zero-shot", "--cache", str(cache16),
                           "--out", str(out), "--device", "cpu"], capture_output=True, text=True,
                          preexec_fn=_limit_file_size)
    assert_one_line_error(proc, "File too large")
    assert not out.exists()


def test_a_symlink_to_the_cache_takes_the_same_lock(synth_root, tmp_path):
    from samcache.cache.locks import split_lock

    extract(extract_cfg(synth_root, tmp_path / "c.zarr", "val", limit=1), progress=False)
    (tmp_path / "link.zarr").symlink_to(tmp_path / "c.zarr")
    with split_lock(str(tmp_path / "c.zarr"), "val"):
        proc = invoke("extract", "--data", synth_root, "--cache", tmp_path / "link.zarr", "--split", "val", *TINY)
    assert_one_line_error(proc, "being extracted by another process")


def test_rerun_removes_stray_partial_files_of_killed_writes(cache16, synth_root, tmp_path):
    import warnings

    from conftest import extract_cfg
    from samcache.pipeline.extract import extract

    cache = tmp_path / "c.zarr"
    shutil.copytree(cache16, cache)
    strays = [cache / "val" / "labels" / "c" / "0" / "0" / f"0.{'a' * 32}.partial",
              cache / f"zarr.{'b' * 32}.partial", cache / "val" / f"zarr.{'c' * 32}.partial"]
    for path in strays:
        path.write_bytes(b"half a chunk")
    mine = cache / "val" / "notes.partial"  # not zarr's naming: not samcache's to remove
    mine.write_text("user")
    extract(extract_cfg(synth_root, cache, "val", dtype="float16"), progress=False)  # all done: nothing to encode
    assert not any(p.exists() for p in strays) and mine.exists()
    mine.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zarr.open_group(str(cache), mode="r")["val"]["labels"][0]
        export_h5(str(cache), str(tmp_path / "c.h5"), ["val"])
