"""HDF5 export: export and every reader of a split agree on one rule for what is complete
(store.complete_rows), under the split lock; concurrent exports; HDF5 errors and advice."""

import shutil

import h5py
import pytest
import zarr

from conftest import assert_one_line_error, invoke
from samcache.cache.hdf5 import export_h5
from samcache.cache.locks import split_lock
from samcache.cache.reader import open_cache
from samcache.errors import SamcacheError


def test_export_waits_for_no_extraction_and_refuses_a_split_being_extracted(cache16, tmp_path):
    with split_lock(str(cache16), "val"):  # an extraction of val is running
        proc = invoke("export", cache16, tmp_path / "a.h5", "--split", "val")
        with pytest.raises(SamcacheError, match="being extracted right now"):
            open_cache(str(cache16)).split("val").require_complete()  # Stage 2 readers: the same rule
    assert_one_line_error(proc, "being extracted by another process or exported", "export again")
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / ".a.h5.tmp").exists()


def test_extract_stops_while_an_export_holds_the_split(cache16, tmp_path, synth_root):
    with split_lock(str(cache16), "train", purpose="export"):
        proc = invoke("extract", "--data", synth_root, "--cache", cache16, "--split", "train", "--model-type", "tiny",
                      "--device", "cpu", "--dtype", "float16", "--num-workers", "0")
    assert_one_line_error(proc, "being extracted by another process or exported")


def test_export_copies_n_images_rows_of_every_array(cache16, tmp_path):
    """A killed append leaves arrays longer than n_images (and done flags of rows not yet registered)."""
    cache = tmp_path / "c.zarr"
    shutil.copytree(cache16, cache)
    val = zarr.open_group(str(cache), mode="r+")["val"]
    n = val.attrs["n_images"]
    for _, arr in val.arrays():
        arr.resize((n + 2, *arr.shape[1:]))
    val["done"][n:] = True  # labels of those rows are all zero: they must never look complete
    export_h5(str(cache), str(tmp_path / "c.h5"), ["val"])
    with h5py.File(tmp_path / "c.h5", "r") as h5:
        shapes = {name: h5["val"][name].shape[0] for name in h5["val"]}
        assert set(shapes.values()) == {n}, shapes
        assert h5["val"]["done"][:].all()
    split = open_cache(str(tmp_path / "c.h5")).split("val")
    assert len(split) == n and split.require_complete() == list(range(n))


def test_concurrent_export_to_one_file_is_refused_and_keeps_the_others_temp(cache16, tmp_path):
    from filelock import FileLock

    out = tmp_path / "x.h5"
    tmp = tmp_path / ".x.h5.tmp"
    tmp.write_bytes(b"the other export's partial file")
    with FileLock(tmp_path / ".x.h5.lock", timeout=0):  # another export of x.h5 is writing
        proc = invoke("export", cache16, out)
    assert_one_line_error(proc, "being written by another samcache export")
    assert tmp.read_bytes() == b"the other export's partial file"
    invoke("export", cache16, out, check=True)  # afterwards it works, and leaves no temporary
    assert out.is_file() and not tmp.exists()


def test_corrupt_hdf5_chunk_names_file_array_and_row(cache16, tmp_path):
    out = tmp_path / "c.h5"
    export_h5(str(cache16), str(out), ["val"])
    with h5py.File(out, "r") as h5:
        offset = h5["val"]["labels"].id.get_chunk_info(1).byte_offset
    with open(out, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 64)
    split = open_cache(str(out)).split("val")
    with pytest.raises(SamcacheError) as err:
        split.labels[1]
    message = str(err.value)
    assert str(out) in message and "val/labels" in message and "row 1" in message
    proc = invoke("zero-shot", "-q", "--cache", out, "--out", tmp_path / "zs", "--num-workers", "1", "--device", "cpu",
                  "--visualize", "0")  # read in a DataLoader worker: still the one line
    assert_one_line_error(proc, str(out), "val/labels row 1", "damaged")
    assert not (tmp_path / "zs").exists()


def test_unfinished_split_in_an_h5_gives_advice_that_works(cache16, tmp_path):
    cache = tmp_path / "c.zarr"
    shutil.copytree(cache16, cache)
    zarr.open_group(str(cache), mode="r+")["val"]["done"][1] = False
    export_h5(str(cache), str(tmp_path / "c.h5"), ["val"])
    with pytest.raises(SamcacheError) as err:
        open_cache(str(tmp_path / "c.h5")).split("val").require_complete()
    assert "in the Zarr cache" in str(err.value) and "export" in str(err.value)
