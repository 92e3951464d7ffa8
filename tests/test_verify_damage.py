"""Damaged caches: a chunk that does not decode is one line naming split, row and array in every command that
reads it; `samcache verify` finds exactly the chunks plain zarr cannot read; `--repair` then a plain `extract`
gives back the rows of a fresh extraction; a broken zarr.json is one line wherever a cache is opened."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

from conftest import assert_one_line_error, assert_same_split, invoke
from samcache.cache.hdf5 import export_h5
from samcache.cache.locks import split_lock

# the settings that built the session's cache32 (conftest.extract_cfg): a plain re-run of extract matches them
EXTRACT32 = ["--model-type", "tiny", "--batch-size", "1", "--num-workers", "0", "--device", "cpu", "--dtype",
             "float32", "--attention", "upstream", "--quiet"]
SPLIT_ARRAYS = ("embeddings", "labels", "instances", "image_ids", "original_sizes", "input_sizes", "done")


@pytest.fixture
def cache(cache32, tmp_path) -> Path:
    """A private copy of the session cache (train 6 rows, val 3 rows) to damage."""
    copy = tmp_path / "c.zarr"
    shutil.copytree(cache32, copy)
    return copy


def chunk_file(cache: Path, split: str, array: str, row: int) -> Path:
    """The Zarr v3 default layout: <array>/c/<row>/0/... (one index per dimension); checked to exist."""
    ndim = len(json.loads((cache / split / array / "zarr.json").read_text())["shape"])
    path = cache.joinpath(split, array, "c", str(row), *["0"] * (ndim - 1))
    assert path.is_file(), path
    return path


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def scramble(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def unreadable_by_plain_zarr(cache: Path) -> set[tuple[str, str, int]]:
    """The reference: (split, array, row) of every row whose chunk plain zarr cannot decode."""
    bad = set()
    root = zarr.open_group(str(cache), mode="r")
    for split in ("train", "val"):
        n = root[split].attrs["n_images"]
        for array in SPLIT_ARRAYS:
            for row in range(n):
                try:
                    root[split][array][row]
                except Exception:
                    bad.add((split, array, row))
    return bad


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_a_damaged_chunk_is_one_line_in_every_command_and_info_and_extract_say_so(cache, synth_root, tmp_path):
    truncate(chunk_file(cache, "val", "embeddings", 1))
    needles = (str(cache), "val/embeddings row 1", f"samcache verify --cache {cache} --split val")
    zero_shot = invoke("zero-shot", "-q", "--cache", cache, "--num-workers", "1", "--device", "cpu", "--visualize", "0",
                       "--out", tmp_path / "zs")  # read in a DataLoader worker: still the one line
    assert_one_line_error(zero_shot, *needles)
    for preload in ("ram", "off"):  # preloaded rows (oindex) and rows read in a DataLoader worker
        head = invoke("train-head", "-q", "--cache", cache, "--train-split", "val", "--val-split", "val", "--epochs",
                      "1", "--preload", preload, "--num-workers", "1", "--device", "cpu", "--visualize", "0",
                      "--out", tmp_path / f"head-{preload}")
        assert_one_line_error(head, *needles)
    export = invoke("export", cache, tmp_path / "c.h5")
    assert_one_line_error(export, *needles)
    assert not (tmp_path / "c.h5").exists()
    assert not (tmp_path / "zs").exists()

    info = invoke("info", "--cache", cache, check=True).stdout
    assert (f"damage: val: 1 damaged row seen (row 1: embeddings); run `samcache verify --cache {cache} --split val`"
            in info)
    resumed = invoke("extract", "--data", synth_root, "--cache", cache, "--split", "val", *EXTRACT32, check=True)
    assert "3/3 done" in resumed.stdout  # the flag says done: extract does not read the data back...
    assert "warning: val: 1 damaged row seen (row 1: embeddings)" in resumed.stderr  # ...but says what was seen


def test_verify_finds_exactly_what_plain_zarr_cannot_read(cache):
    truncate(chunk_file(cache, "val", "embeddings", 1))
    scramble(chunk_file(cache, "val", "labels", 2))
    scramble(chunk_file(cache, "train", "instances", 4))
    chunk_file(cache, "train", "done", 5).write_bytes(b"")
    chunk_file(cache, "train", "embeddings", 3).unlink()  # plain zarr reads the fill value: zeros, silently
    expected = {("val", "embeddings", 1), ("val", "labels", 2), ("train", "instances", 4), ("train", "done", 5)}
    assert unreadable_by_plain_zarr(cache) == expected
    assert not zarr.open_group(str(cache), mode="r")["train"]["embeddings"][3].any()

    proc = invoke("verify", "--cache", cache, "-q")
    found = set()
    for line in proc.stdout.splitlines():  # "<split> row <r> (<image id>): <array>: <cause>; ..."
        split, _, row, *_ = line.split(" ", 3)
        for part in line.split(": ", 1)[1].split("; "):
            found.add((split, part.split(":")[0], int(row)))
    assert found == expected | {("train", "embeddings", 3)}
    assert "train row 3 (" in proc.stdout and "embeddings: reads as all zeros" in proc.stdout
    assert_one_line_error(proc, "damage in", "train: 3 damaged rows of 6", "val: 2 damaged rows of 3", "--repair")

    info = invoke("info", "--cache", cache, check=True).stdout
    assert "damage: val: 2 damaged rows found by verify (rows 1, 2: embeddings, labels)" in info
    proc = invoke("verify", "--cache", cache, "--split", "val", "-q")
    assert_one_line_error(proc, "val: 2 damaged rows of 3", f"samcache verify --cache {cache} --split val --repair")
    assert "train" not in proc.stdout


def test_repair_then_a_plain_extract_gives_the_fresh_rows_back(cache, cache32, synth_root):
    truncate(chunk_file(cache, "val", "embeddings", 1))
    scramble(chunk_file(cache, "val", "instances", 1))
    chunk_file(cache, "val", "done", 2).write_bytes(b"\x00")
    proc = invoke("verify", "--cache", cache, "--split", "val", "--repair", "-q", check=True)
    assert proc.stdout.splitlines()[-1] == ("val: 2 damaged rows marked not done (rows 1, 2); `samcache extract "
                                            "--split val` with the settings that built it re-encodes them")
    val = zarr.open_group(str(cache), mode="r")["val"]
    assert val["done"][:].tolist() == [True, False, False]
    assert unreadable_by_plain_zarr(cache) == set()  # the damaged chunks are gone: export copies the split
    assert "val              3         1/3" in invoke("info", "--cache", cache, check=True).stdout

    proc = invoke("extract", "--data", synth_root, "--cache", cache, "--split", "val", *EXTRACT32, check=True)
    assert "val: 2 images" in proc.stdout and "warning" not in proc.stderr
    assert_same_split(cache, cache32, "val")  # bit for bit what a fresh extraction wrote
    assert invoke("verify", "--cache", cache, "-q", check=True).stdout.strip() == (
        f"{cache}: every row of every array reads back: train (6/6 done), val (3/3 done)")
    assert not (cache.parent / ".c.zarr.val.damage.json").exists()
    assert "damage" not in invoke("info", "--cache", cache, check=True).stdout


def test_repair_waits_for_no_extraction_and_leaves_hdf5_alone(cache, tmp_path):
    truncate(chunk_file(cache, "val", "embeddings", 0))
    with split_lock(str(cache), "val"):  # an extraction of val is running
        proc = invoke("verify", "--cache", cache, "--split", "val", "--repair", "-q")
    assert_one_line_error(proc, "being extracted by another process", "repair again")
    assert zarr.open_group(str(cache), mode="r")["val"]["done"][0]

    clean = tmp_path / "clean.zarr"
    shutil.copytree(cache, clean)
    chunk_file(clean, "val", "embeddings", 0).unlink()
    zarr.open_group(str(clean), mode="r+")["val"]["done"][0] = False  # not done: not exported as data
    out = tmp_path / "c.h5"
    export_h5(str(clean), str(out), ["val"])
    with h5py.File(out, "r") as h5:
        offset = h5["val"]["labels"].id.get_chunk_info(1).byte_offset
    with open(out, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 64)
    proc = invoke("verify", "--cache", out, "-q")
    assert proc.stdout.startswith("val row 1 (") and "labels:" in proc.stdout
    assert_one_line_error(proc, "val: 1 damaged row of 3", "read-only: export it again")
    proc = invoke("verify", "--cache", out, "--repair")
    assert_one_line_error(proc, "HDF5 cache", "--repair works on the Zarr cache")


@pytest.mark.parametrize("node", ["zarr.json", pytest.param("val/zarr.json", marks=pytest.mark.slow),
                                  "val/labels/zarr.json"])
def test_a_broken_zarr_json_is_one_line_wherever_the_cache_is_opened(cache, synth_root, tmp_path, node):
    (cache / node).write_text('{"zarr_format": 3, "node_type": "gr')
    for args in (["info", "--cache", cache], ["verify", "--cache", cache],
                 ["zero-shot", "--cache", cache, "--out", tmp_path / "zs"], ["export", cache, tmp_path / "x.h5"],
                 ["extract", "--data", synth_root, "--cache", cache, "--split", "val", *EXTRACT32]):
        assert_one_line_error(invoke(*args), f"{cache / node} is damaged (not valid JSON")
