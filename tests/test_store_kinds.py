"""A store kind is one class in one module plus one ``KINDS`` entry, and every reading command then serves it.

The outside kind here is a zipped Zarr store (zarr's own ``ZipStore``, read-only), registered by the test the way
docs/extending.md says. Its zero-shot results must equal those of the folder it was zipped from, and its arrays
what plain zarr reads from the folder.
"""

import csv
import zipfile
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import invoke
from samcache.cache import stores
from samcache.cache.stores.base import StoreKind


class ZippedZarr(StoreKind):
    """A whole cache in one .zip (zarr's ZipStore): read-only, on this machine, no locks, no notes."""

    describe = "a zipped Zarr group"
    as_cache = "a zipped Zarr cache"
    writable = False
    on_this_machine = True

    def matches(self, cache: str) -> bool:
        return cache.endswith(".zarr.zip")

    def exists(self, cache: str) -> bool:
        return Path(cache).is_file()

    def open(self, cache: str, mode: str):
        return zarr.open_group(zarr.storage.ZipStore(cache, mode="r"), mode="r")


@pytest.fixture
def zipped(cache16, tmp_path, monkeypatch):
    path = tmp_path / "c16.zarr.zip"
    with zipfile.ZipFile(path, "w") as archive:  # stored, as zarr's ZipStore reads it
        for file in sorted(Path(cache16).rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(cache16).as_posix())
    monkeypatch.setattr(stores, "KINDS", [ZippedZarr(), *stores.KINDS])
    return path


def _ious(run: Path) -> dict:
    with open(run / "summary.csv") as f:
        return {row["class"]: row["iou_semantic"] for row in csv.DictReader(f)}


def test_a_store_kind_registered_from_outside_serves_the_reading_commands(cache16, zipped, tmp_path):
    import samcache

    val = samcache.open_cache(str(zipped)).split("val")
    plain = zarr.open_group(str(cache16), mode="r")["val"]
    assert np.array_equal(val.features(0)["embeddings"], plain["embeddings"][0])
    assert "val" in invoke("info", "--cache", zipped, check=True).stdout
    common = ("--split", "val", "--prompt", "center", "--limit", "2", "--num-workers", "0", "--visualize", "0")
    invoke("zero-shot", "--cache", cache16, "--out", tmp_path / "folder", *common, check=True)
    invoke("zero-shot", "--cache", zipped, "--out", tmp_path / "zip", *common, check=True)
    assert _ious(tmp_path / "zip") == _ious(tmp_path / "folder")


def test_what_a_kind_cannot_do_is_refused_in_one_line(zipped, synth_root):
    proc = invoke("extract", "--data", synth_root, "--cache", zipped, "--split", "val", "--model-type", "tiny")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{zipped} is a zipped Zarr cache, which is read-only" in proc.stderr


def test_each_path_goes_to_its_kind():
    assert [type(stores.kind_of(p)).__name__ for p in ("s3://bucket/c.zarr", "gs://bucket/c.zarr", "c.h5", "C.HDF5",
                                                        "cache/c.zarr")] == \
        ["S3Zarr", "UrlZarr", "Hdf5File", "Hdf5File", "LocalZarr"]
