"""SAM 2.1 in the same cache (format 2): equal to upstream SAM2ImagePredictor, and every Stage 2 command runs on it."""

import json

import h5py
import numpy as np
import pytest
import torch
import zarr

from conftest import assert_one_line_error, invoke, snapshot
from samcache.cache.reader import open_cache
from samcache.data.cityscapes import list_images, read_image
from samcache.features.backend import Prompts
from samcache.features.families import backend_for
from samcache.pipeline.runs import read_csv

MODEL = "sam2.1_hiera_t"


def upstream_predictor(sam2_checkpoint):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from samcache.features.sam2.build import build_sam2

    model, _ = build_sam2(MODEL, sam2_checkpoint)
    return SAM2ImagePredictor(model)


def test_cache_equals_sam2_image_predictor_features(sam2_cache, sam2_checkpoint, synth_root):
    root = zarr.open_group(str(sam2_cache), mode="r")  # plain zarr: the documented layout
    assert root.attrs["samcache_format"] == 3 and root.attrs["family"] == "sam2"
    assert root.attrs["feature_arrays"] == {k: list(v) for k, v in backend_for("sam2").features.items()}
    val = root["val"]
    assert val["image_embed"].chunks == (1, 256, 64, 64) and val["high_res_feats_0"].chunks == (1, 32, 256, 256)
    assert val["input_sizes"][:].tolist() == [[1024, 1024]] * 3
    predictor = upstream_predictor(sam2_checkpoint)
    for row, rec in enumerate(list_images(synth_root, "val")):
        predictor.set_image(read_image(rec.image_path))
        ref = {"image_embed": predictor._features["image_embed"],
               "high_res_feats_0": predictor._features["high_res_feats"][0],
               "high_res_feats_1": predictor._features["high_res_feats"][1]}
        for name, value in ref.items():
            value = value[0].numpy()
            assert np.abs(val[name][row] - value).max() / np.abs(value).max() <= 1e-5, name


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_masks_from_the_cache_equal_predict(sam2_cache, sam2_checkpoint, synth_root):
    """Points, a box, both; multimask or not: one set_image, six predictions."""
    backend = backend_for("sam2")
    decoder, _ = backend.build_decoder(MODEL, sam2_checkpoint, 0)
    split = open_cache(sam2_cache).split("val")
    predictor = upstream_predictor(sam2_checkpoint)
    row = 1
    predictor.set_image(read_image(list_images(synth_root, "val")[row].image_path))
    size = tuple(int(v) for v in split.original_sizes[row])
    points, labels = np.array([[130.0, 200.0], [400.0, 60.0]]), np.array([1, 0])
    box = np.array([50.0, 40.0, 300.0, 220.0])
    features = {k: torch.from_numpy(v[None]).float() for k, v in split.features(row).items()}
    for kind in ("points", "box", "points+box"):
        for multimask in (True, False):
            kw = {"points": dict(point_coords=points, point_labels=labels), "box": dict(box=box),
                  "points+box": dict(point_coords=points, point_labels=labels, box=box)}[kind]
            ref_masks, ref_scores, _ = predictor.predict(**kw, multimask_output=multimask)
            coords = torch.tensor(backend.to_input_frame(points, size)[None], dtype=torch.float) \
                if "points" in kind else None
            point_labels = torch.tensor(labels[None], dtype=torch.int) if "points" in kind else None
            boxes = torch.tensor(backend.to_input_frame(box.reshape(2, 2), size).reshape(1, 4), dtype=torch.float) \
                if "box" in kind else None
            logits, scores = backend.decode(decoder, features, torch.tensor([0]), Prompts(coords, point_labels, boxes),
                                            multimask)
            masks = (backend.postprocess(logits, None, size) > 0)[0].numpy()
            np.testing.assert_allclose(scores[0].numpy(), ref_scores, atol=1e-4, err_msg=f"{kind} {multimask}")
            # cached features lose upstream's channels-last layout: rounding may flip a pixel whose logit is ~0
            assert masks.shape == ref_masks.shape and (masks != ref_masks).mean() < 1e-4, (kind, multimask)


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_stage2_commands_run_on_a_sam2_cache(sam2_cache, sam2_checkpoint, tmp_path):
    common = ["--cache", sam2_cache, "--device", "cpu"]
    ck = ["--checkpoint", sam2_checkpoint]
    invoke("zero-shot", *common, *ck, "--out", tmp_path / "zs", "--visualize", "0", "--num-workers", "0",
           "--prompt", "box", check=True)
    invoke("clicks", *common, *ck, "--out", tmp_path / "clicks", "--max-clicks", "2", "--limit", "1",
           "--visualize", "0", "--num-workers", "0", check=True)
    for head in ("main", "multiscale"):
        invoke("train-head", *common, "--train-split", "val", "--val-split", "val", "--epochs", "1", "--width", "16",
               "--batch-size", "2", "--head", head, "--out", tmp_path / head, "--num-workers", "0", "--visualize", "0",
               check=True)
    checkpoint = torch.load(tmp_path / "multiscale" / "head_epoch_1.pt", weights_only=True)
    assert checkpoint["features"] == ["image_embed", "high_res_feats_1", "high_res_feats_0"]
    evaluated = invoke("evaluate", "--head", tmp_path / "multiscale" / "head_epoch_1.pt", *common, "--out",
                       tmp_path / "eval", "--num-workers", "0", check=True)
    assert "RANDOM" not in evaluated.stdout  # a checkpoint, even of random values, is not labelled random
    assert_one_line_error(invoke("zero-shot", *common, "--out", tmp_path / "x"), "pass --checkpoint")
    # issue 16: provenance on SAM 2.1 (clicks scored 1 of the 3 images), multiscale heads named as such
    row = read_csv(tmp_path / "clicks" / "summary.csv")[0]
    assert (row["model"], row["split"], row["images"], row["split_images"]) == (MODEL, "val", "1", "3")
    report = invoke("report", tmp_path / "main", tmp_path / "multiscale", "--out", tmp_path / "rep", check=True)
    runs = {r["run"] for r in read_csv(tmp_path / "rep" / "report.csv")}
    assert runs == {"head (1 ep) TRAIN=VAL", "multiscale head (1 ep) TRAIN=VAL"}  # trained and scored on val
    assert "model sam2.1_hiera_t" in report.stdout


def test_info_export_lock_and_h5_errors_on_sam2(sam2_cache, tmp_path):
    from importlib.metadata import version

    from samcache.cache.locks import split_lock

    info = invoke("info", "--cache", sam2_cache, check=True).stdout.splitlines()[0]
    assert f"sam2 {version('sam2')}" in info and "segment-anything" not in info
    with split_lock(str(sam2_cache), "val"):
        assert_one_line_error(invoke("export", sam2_cache, tmp_path / "a.h5"), "being extracted by another process")
    invoke("export", sam2_cache, tmp_path / "a.h5", check=True)
    with h5py.File(tmp_path / "a.h5", "r") as h5:
        offset = h5["val"]["high_res_feats_0"].id.get_chunk_info(2).byte_offset
    with open(tmp_path / "a.h5", "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 64)
    split = open_cache(str(tmp_path / "a.h5")).split("val")
    with pytest.raises(Exception, match="val/high_res_feats_0 row 2"):
        split.feature_arrays["high_res_feats_0"][2]


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_report_puts_sam_and_sam2_side_by_side_with_their_costs(sam2_cache, sam2_checkpoint, cache16, tmp_path):
    invoke("zero-shot", "--cache", sam2_cache, "--checkpoint", sam2_checkpoint, "--out", tmp_path / "zs2",
           "--device", "cpu", "--visualize", "0", "--num-workers", "0", check=True)
    invoke("zero-shot", "--cache", cache16, "--out", tmp_path / "zs1", "--device", "cpu", "--visualize", "0",
           "--num-workers", "0", check=True)
    proc = invoke("report", tmp_path / "zs1", tmp_path / "zs2", "--out", tmp_path / "report", "--gallery", "0",
                  check=True)  # the tables and costs: no gallery to replay
    runs = {r["run"] for r in read_csv(tmp_path / "report" / "report.csv")}
    # issue 16: RANDOM per run (the tiny run has random weights, the SAM 2.1 one a checkpoint)
    assert runs == {"tiny zero-shot random/best-score RANDOM", "sam2.1_hiera_t zero-shot random/best-score"}
    assert f"extract val ({sam2_cache})" in proc.stdout and "mib_per_image" in proc.stdout
    assert "encoder_s_per_image" in proc.stdout


def test_hdf5_export_reads_with_plain_h5py_and_imports_bit_for_bit(sam2_cache, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cache.h5"
    invoke("export", sam2_cache, out, check=True)
    code = f"""
import json, sys, h5py, numpy as np
with h5py.File({str(out)!r}, "r") as f:
    attrs = {{k: json.loads(v) for k, v in f.attrs.items()}}
    assert attrs["samcache_format"] == 3 and attrs["family"] == "sam2"
    val = f["val"]
    assert json.loads(val.attrs["n_images"]) == 3
    assert val["image_embed"].chunks == (1, 256, 64, 64) and val["image_embed"].compression == "gzip"
    assert val["labels"].chunks[0] == 1 and val["done"][:].all()
    np.save({str(tmp_path / "emb.npy")!r}, val["high_res_feats_1"][2])
    print(val["image_ids"].asstr()[0])
assert "samcache" not in sys.modules
"""
    first_id = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    original = zarr.open_group(str(sam2_cache), mode="r")
    assert first_id == str(original["val"]["image_ids"][0])
    assert np.array_equal(np.load(tmp_path / "emb.npy"), original["val"]["high_res_feats_1"][2])
    back = tmp_path / "back.zarr"
    invoke("import", out, back, check=True)
    copy = zarr.open_group(str(back), mode="r")
    assert dict(copy.attrs) == dict(original.attrs)
    for name, array in original["val"].arrays():
        assert np.array_equal(copy["val"][name][:], array[:]), name
        assert copy["val"][name].chunks == array.chunks and copy["val"][name].dtype == array.dtype, name
    assert dict(copy["val"].attrs) == dict(original["val"].attrs)
    assert_one_line_error(invoke("export", sam2_cache, out), "exists")
    assert_one_line_error(invoke("import", out, back), "not an empty directory")


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_stage2_reads_the_hdf5_file_and_gets_the_same_numbers(cache16, tmp_path):
    h5 = tmp_path / "c.h5"
    invoke("export", cache16, h5, "--compression", "lzf", check=True)
    for name, cache in (("zarr", cache16), ("h5", h5)):
        invoke("zero-shot", "--cache", cache, "--out", tmp_path / f"zs-{name}", "--device", "cpu",
               "--visualize", "0", "--num-workers", "1", check=True)
        invoke("train-head", "--cache", cache, "--out", tmp_path / f"head-{name}", "--epochs", "1", "--width", "16",
               "--batch-size", "2", "--device", "cpu", "--num-workers", "1", "--preload", "off",
               "--visualize", "0", check=True)
    for run in ("zs", "head"):
        assert (tmp_path / f"{run}-zarr" / "summary.csv").read_text() == \
            (tmp_path / f"{run}-h5" / "summary.csv").read_text()
    assert "val" in invoke("info", "--cache", h5, check=True).stdout
    assert_one_line_error(invoke("extract", "--data", tmp_path, "--cache", h5, "--split", "val", "--model-type",
                                 "tiny"), "read-only")
    assert_one_line_error(invoke("upgrade", "--cache", h5), "reads only", "samcache import")
    assert_one_line_error(invoke("export", h5, tmp_path / "again.h5"), "already an HDF5 cache")
    assert not (tmp_path / "again.h5").exists()


def test_export_and_import_keep_out_of_caches_runs_and_the_dataset(cache16, synth_root, tmp_path):
    before = snapshot(cache16)
    assert_one_line_error(invoke("export", cache16, cache16 / "inside.h5"), "inside the samcache cache")
    assert_one_line_error(invoke("export", cache16, tmp_path / "x.zarr"), "invalid value for OUT")
    h5 = tmp_path / "c.h5"
    invoke("export", cache16, h5, "--split", "val", "--split", "val", check=True)  # a repeated split: once
    assert snapshot(cache16) == before
    run = tmp_path / "zs"
    invoke("zero-shot", "--cache", h5, "--out", run, "--device", "cpu", "--visualize", "0", "--num-workers", "0",
           "--limit", "1", check=True)
    assert_one_line_error(invoke("export", cache16, run / "x.h5"), "inside the run folder")
    assert_one_line_error(invoke("import", h5, run / "c.zarr"), "inside the run folder")
    assert_one_line_error(invoke("import", h5, synth_root / "c.zarr"), "inside the data root")
    assert_one_line_error(invoke("import", h5, tmp_path / "c2.h5"), "names an HDF5 file")
    assert_one_line_error(invoke("import", h5, cache16 / "nested.zarr"), "inside the samcache cache")
    assert not (run / "x.h5").exists() and not (run / "c.zarr").exists() and not (synth_root / "c.zarr").exists()
    assert snapshot(cache16) == before
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.create_dataset("x", data=[1])
    assert_one_line_error(invoke("info", "--cache", foreign), "is an HDF5 file but not a samcache cache")


def test_format1_cache_is_read_as_it_is_and_upgraded_only_on_request(cache16, synth_root, tmp_path):
    import shutil

    old = tmp_path / "old.zarr"
    shutil.copytree(cache16, old)
    root = zarr.open_group(str(old), mode="r+")
    for name in ("train", "val"):  # what samcache 0.1 wrote: no family anywhere, format 1
        fp = dict(root[name].attrs["fingerprint"])
        fp.pop("family")
        root[name].attrs["fingerprint"] = fp
    attrs = {k: v for k, v in root.attrs.items() if k not in ("family", "feature_arrays", "main_feature",
                                                             "sam2_version", "resize")}
    attrs["fingerprint"] = {k: v for k, v in attrs["fingerprint"].items() if k != "family"}
    root.attrs.put({**attrs, "samcache_format": 1})
    arrays = snapshot(old / "val" / "embeddings")
    invoke("zero-shot", "--cache", old, "--out", tmp_path / "zs", "--device", "cpu", "--visualize", "0",
           "--num-workers", "0", check=True)
    assert "format 1" in invoke("info", "--cache", old, check=True).stdout
    extract_args = ["extract", "--data", synth_root, "--cache", old, "--split", "val", "--model-type", "tiny",
                    "--dtype", "float16", "--device", "cpu", "--num-workers", "0"]
    assert_one_line_error(invoke(*extract_args), "format-1 cache", "samcache upgrade")
    assert json.loads((old / "zarr.json").read_text())["attributes"]["samcache_format"] == 1  # never silently
    assert "upgraded" in invoke("upgrade", "--cache", old, check=True).stdout
    assert snapshot(old / "val" / "embeddings") == arrays  # attributes only
    invoke(*extract_args, check=True)
    assert open_cache(old).format == 3
    assert "already format 3" in invoke("upgrade", "--cache", old, check=True).stdout


def test_readme_recipe_hands_cached_features_to_upstream(sam2_cache, sam2_checkpoint, tmp_path, monkeypatch):
    """The documented block (docs/cache-format.md), with this cache and checkpoint: upstream predict equals our decode of the row."""
    from pathlib import Path

    from docs_text import code as documented

    code = documented("sam2-recipe")
    code = code.replace("cache/cityscapes_sam2.zarr", str(sam2_cache))
    code = code.replace("configs/sam2.1/sam2.1_hiera_l.yaml", "configs/sam2.1/sam2.1_hiera_t.yaml")
    code = code.replace("checkpoints/sam2.1_hiera_large.pt", str(sam2_checkpoint))
    code = code.replace("[[1000, 500]]", "[[300, 120]]")  # inside a 512x256 image
    scope: dict = {}
    exec(compile(code, "docs/cache-format.md", "exec"), scope)  # noqa: S102 - the documented recipe itself
    backend = backend_for("sam2")
    decoder, _ = backend.build_decoder(MODEL, sam2_checkpoint, 0)
    split = open_cache(sam2_cache).split("val")
    features = {k: torch.from_numpy(v[None]).float() for k, v in split.features(0).items()}
    coords = torch.tensor(backend.to_input_frame(np.array([[300.0, 120.0]]), (256, 512))[None], dtype=torch.float)
    logits, scores = backend.decode(decoder, features, torch.tensor([0]),
                                    Prompts(coords, torch.ones((1, 1), dtype=torch.int)), True)
    masks = (backend.postprocess(logits, None, (256, 512)) > 0)[0].numpy()
    np.testing.assert_allclose(scores[0].numpy(), scope["scores"], atol=1e-4)
    assert (masks != scope["masks"]).mean() < 1e-4


def test_demo_detects_a_sam2_checkpoint_type(sam2_checkpoint):
    from samcache.pipeline.configs import DemoConfig
    from samcache.pipeline.demo import resolve_model

    assert resolve_model(DemoConfig(checkpoint=str(sam2_checkpoint))) == (MODEL, str(sam2_checkpoint))
