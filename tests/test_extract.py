"""Stage 1: the cache equals upstream SamPredictor; resume, grow, rebuild, errors; plain readers."""

import hashlib
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from conftest import assert_one_line_error, assert_same_split, done_count, extract_cfg, invoke
from samcache.cache.reader import open_cache
from samcache.data.cityscapes import list_images, read_image, read_instance_ids, read_label_ids
from samcache.features.sam1.build import build_random_sam
from samcache.pipeline.extract import extract

def test_cache_equals_sampredictor_set_image(cache32, synth_root):
    predictor = SamPredictor(build_random_sam("tiny", seed=0))  # segment-anything's own modules throughout
    val = open_cache(cache32).split("val")
    records = list_images(synth_root, "val")
    assert val.image_ids == [r.image_id for r in records]
    assert val.done_mask().all()
    for row, rec in enumerate(records):
        predictor.set_image(read_image(rec.image_path))
        assert np.array_equal(val.embedding(row), predictor.features[0].numpy())  # bit-identical
        assert tuple(val.original_sizes[row]) == predictor.original_size
        assert tuple(val.input_sizes[row]) == predictor.input_size
        assert np.array_equal(val.labels[row], read_label_ids(rec.label_path))
        assert np.array_equal(val.instances[row], read_instance_ids(rec.instance_path))


def test_sdpa_cache_matches_upstream_sampredictor(synth_root, tmp_path):
    """The default attention (SDPA with the relative-position bias) against segment-anything's own."""
    cache = tmp_path / "sdpa.zarr"
    extract(extract_cfg(synth_root, cache, "val", attention="sdpa", batch_size=2), progress=False)
    predictor = SamPredictor(build_random_sam("tiny", seed=0))
    val = open_cache(cache).split("val")
    for row, rec in enumerate(list_images(synth_root, "val")):
        predictor.set_image(read_image(rec.image_path))
        reference = predictor.features[0].numpy()
        assert np.abs(val.embedding(row) - reference).max() / np.abs(reference).max() < 1e-5


def test_float16_cache_is_the_rounded_float32_one(cache16, cache32):
    e16 = open_cache(cache16).split("train").embeddings[:]
    e32 = open_cache(cache32).split("train").embeddings[:]
    assert e16.dtype == np.float16
    # batch 3 vs batch 1 may move float32 results by an ulp; the rounding to float16 dominates
    np.testing.assert_allclose(e16.astype(np.float32), e32, rtol=1e-3, atol=1e-3)


def test_plain_zarr_and_dask_read_the_store_without_samcache(cache32, tmp_path):
    code = f"""
import sys, numpy as np, zarr, dask.array as da
g = zarr.open_group({str(cache32)!r}, mode="r")
assert g.attrs["samcache_format"] == 3 and g.attrs["family"] == "sam" and g.attrs["fingerprint"]["model_type"] == "tiny"
emb = da.from_zarr({str(cache32)!r}, component="val/embeddings")
assert emb.chunksize == (1, 256, 64, 64)
np.save({str(tmp_path / 'emb.npy')!r}, emb.mean(axis=(1, 2, 3)).compute())
np.save({str(tmp_path / 'ids.npy')!r}, np.array(g["val/image_ids"][:].tolist()))
assert "samcache" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    val = open_cache(cache32).split("val")
    np.testing.assert_allclose(np.load(tmp_path / "emb.npy"), val.embeddings[:].mean(axis=(1, 2, 3)), rtol=1e-6)
    assert list(np.load(tmp_path / "ids.npy")) == val.image_ids


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_store(synth_root, cache32, tmp_path):
    cache = tmp_path / "killed.zarr"
    args = ["extract", "--data", synth_root, "--cache", cache, "--split", "train", "--model-type", "tiny",
            "--batch-size", "1", "--num-workers", "0", "--device", "cpu", "--dtype", "float32",
            "--attention", "upstream"]
    proc = subprocess.Popen([sys.executable, "-m", "samcache.pipeline.cli", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while done_count(cache, "train") < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = done_count(cache, "train")
    assert 2 <= done_before < 6, "the kill should land mid-run"
    result = extract(extract_cfg(synth_root, cache, "train"), progress=False)
    assert result.images == 6 - done_before
    assert_same_split(cache, cache32, "train")


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return h.hexdigest()


def test_grown_split_is_appended_and_new_split_leaves_others_alone(synth_root, cache32, tmp_path):
    cache = tmp_path / "grow.zarr"
    first = extract(extract_cfg(synth_root, cache, "train", limit=2), progress=False)
    assert (first.images, first.n_total) == (2, 2)
    second = extract(extract_cfg(synth_root, cache, "train"), progress=False)
    assert (second.images, second.n_total, second.n_done) == (4, 6, 6)
    assert_same_split(cache, cache32, "train")
    again = extract(extract_cfg(synth_root, cache, "train"), progress=False)
    assert again.images == 0  # nothing left to do
    before = _tree_digest(cache / "train")
    extract(extract_cfg(synth_root, cache, "val"), progress=False)
    assert _tree_digest(cache / "train") == before
    assert open_cache(cache).splits == ["train", "val"]


def test_fingerprint_mismatch_is_refused_and_rebuild_recomputes(synth_root, tmp_path):
    cache = tmp_path / "fp.zarr"
    extract(extract_cfg(synth_root, cache, "val", limit=1), progress=False)
    common = ["extract", "--data", synth_root, "--cache", cache, "--split", "val", "--model-type", "tiny",
              "--limit", "1", "--device", "cpu", "--num-workers", "0"]
    line = assert_one_line_error(invoke(*common, "--dtype", "float16"), "float32", "float16", "--rebuild")
    assert "holds tiny/RANDOM weights (seed 0)/float32" in line
    assert_one_line_error(invoke(*common, "--dtype", "float32", "--seed", "7"), "seed 0", "seed 7")
    invoke(*common, "--dtype", "float16", "--rebuild", check=True)
    val = open_cache(cache).split("val")
    assert val.embeddings.dtype == np.float16 and val.done_mask().all()
    assert val.fingerprint.embedding_dtype == "float16"


def _val_copy(synth_root, tmp_path):
    """A private copy of the val split to damage, and its image records."""
    data = tmp_path / "data"
    shutil.copytree(synth_root / "leftImg8bit" / "val", data / "leftImg8bit" / "val")
    shutil.copytree(synth_root / "gtFine" / "val", data / "gtFine" / "val")
    return data, list_images(data, "val")


def test_corrupt_image_is_named_and_not_done_and_a_missing_label_writes_nothing(synth_root, tmp_path):
    """A broken image fails alone (named, never done, the others encoded); an image without its label is refused
    before anything is written (it could never be scored)."""
    data, recs = _val_copy(synth_root, tmp_path)
    saved_label = recs[1].label_path.read_bytes()
    recs[1].label_path.unlink()
    cache = tmp_path / "bad.zarr"
    args = ["extract", "--data", data, "--cache", cache, "--split", "val", "--model-type", "tiny", "--device", "cpu",
            "--num-workers", "1", "--batch-size", "2"]
    assert_one_line_error(invoke(*args), f"{recs[1].image_path} has no label file: {recs[1].label_path} is missing")
    assert not cache.exists()
    recs[1].label_path.write_bytes(saved_label)
    good = recs[0].image_path.read_bytes()
    recs[0].image_path.write_bytes(good[: len(good) // 3])  # truncated PNG
    line = assert_one_line_error(invoke(*args), "1 image(s) failed")
    assert recs[0].image_path.name in line
    val = open_cache(cache).split("val")
    assert val.done_mask().tolist() == [False, True, True]
    recs[0].image_path.write_bytes(good)
    result = extract(extract_cfg(data, cache, "val", dtype="float16"), progress=False)
    assert result.images == 1 and open_cache(cache).split("val").done_mask().all()


def test_image_without_a_readable_header_keeps_the_split_incomplete(synth_root, tmp_path):
    """A 0-byte PNG (no size to read) must not vanish from the split, which would then look complete."""
    data, recs = _val_copy(synth_root, tmp_path)
    good = recs[1].image_path.read_bytes()
    recs[1].image_path.write_bytes(b"")
    cache = tmp_path / "c.zarr"
    line = assert_one_line_error(invoke("extract", "--data", data, "--cache", cache, "--split", "val",
                                        "--model-type", "tiny", "--device", "cpu", "--num-workers", "0"),
                                 "1 image(s) failed")
    assert recs[1].image_path.name in line
    assert "2/3" in invoke("info", "--cache", cache, check=True).stdout
    assert_one_line_error(invoke("zero-shot", "--cache", cache, "--out", tmp_path / "zs"), "2/3")
    recs[1].image_path.write_bytes(good)
    result = extract(extract_cfg(data, cache, "val", dtype="float16"), progress=False)
    assert result.images == 1 and open_cache(cache).split("val").done_mask().all()


def test_missing_data_and_cache_errors(tmp_path):
    assert_one_line_error(invoke("extract", "--data", tmp_path / "nowhere", "--cache", tmp_path / "c.zarr",
                                  "--split", "val", "--model-type", "tiny"), "no Cityscapes split directory")
    assert_one_line_error(invoke("info", "--cache", tmp_path / "none.zarr"), "no cache at")


def test_refused_checkpoint_leaves_no_file_beside_the_cache(synth_root, tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"weight": torch.zeros(3)}, wrong)
    cache = tmp_path / "c" / "x.zarr"
    assert_one_line_error(invoke("extract", "--data", synth_root, "--cache", cache, "--split", "val",
                                 "--model-type", "vit_b", "--checkpoint", wrong), "wrong.pth is not a SAM 1 checkpoint")
    assert not cache.parent.exists() or not any(cache.parent.iterdir())  # no store, no lock file


def test_info_lists_splits(cache32):
    proc = invoke("info", "--cache", cache32, check=True)
    assert "RANDOM weights" in proc.stdout and "family sam: embeddings (256, 64, 64)" in proc.stdout
    assert "train" in proc.stdout and "6/6" in proc.stdout and "3/3" in proc.stdout


@pytest.mark.parametrize("command", ["synth", "extract", "info"])
def test_help(command):
    proc = invoke(command, "--help", check=True)
    assert "Usage: samcache " + command in proc.stdout


def test_data_root_is_stored_absolute_and_overlays_work_from_anywhere(synth_root, tmp_path, monkeypatch):
    from samcache.evaluation.visualize import source_image

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "data").symlink_to(synth_root)
    monkeypatch.chdir(tmp_path / "a")
    extract(extract_cfg("data", tmp_path / "c.zarr", "val", limit=1), progress=False)
    split = open_cache(tmp_path / "c.zarr").split("val")
    assert Path(split.attrs["data_root"]).is_absolute()
    monkeypatch.chdir(tmp_path / "b")  # a later stage, run from another directory
    image = source_image(split, split.image_ids[0])
    assert image is not None and image.shape == (256, 512, 3)


@pytest.mark.slow
def test_dask_and_local_extraction_do_not_import_each_other():
    code = ("import sys; import samcache.pipeline.dask_extract; assert 'samcache.pipeline.extract' not in sys.modules;"
            "import samcache.pipeline.extract; import samcache.pipeline.cli")
    subprocess.run([sys.executable, "-c", code], check=True)
