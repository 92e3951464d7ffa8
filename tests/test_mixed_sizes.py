"""A split may hold images of different sizes (cache format 3): labels padded to the split's largest image, each
image's own size in ``original_sizes``, one image per chunk, read by plain zarr, and scores exact per image.
Older caches are read as they are; `samcache upgrade` says what it rewrites. References: the PNGs read with PIL,
upstream SamPredictor on the image file, upstream ``Sam.postprocess_masks``."""

import json
import shutil

import numpy as np
import pytest
import torch
import zarr
from PIL import Image
from segment_anything import SamPredictor

from conftest import assert_one_line_error, extract_cfg, invoke, snapshot
from samcache.cache.reader import open_cache
from samcache.data.cityscapes import list_images, read_image, read_label_ids
from samcache.data.labels import IGNORE, get_class_set
from samcache.evaluation.heads import evaluate_head
from samcache.features.sam1.build import build_random_sam
from samcache.pipeline.runs import read_csv

SMALL = (192, 384)  # (H, W) of the cropped copy; the synthetic images are 256 x 512


def _mixed(synth_root, root):
    """One synthetic val image as it is, and a crop of another under its own city: two sizes in one split."""
    first, second = list_images(synth_root, "val")[:2]
    for part, suffix in (("leftImg8bit", "_leftImg8bit.png"), ("gtFine", "_gtFine_labelIds.png"),
                         ("gtFine", "_gtFine_instanceIds.png")):
        folder = root / part / "val" / first.city
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_root / part / "val" / first.city / f"{first.image_id}{suffix}", folder)
        crop = root / part / "val" / "cropburg"
        crop.mkdir(parents=True, exist_ok=True)
        array = np.asarray(Image.open(synth_root / part / "val" / second.city / f"{second.image_id}{suffix}"))
        Image.fromarray(array[: SMALL[0], : SMALL[1]]).save(crop / f"cropburg_000000_000019{suffix}")
    return list_images(root, "val")


@pytest.fixture(scope="module")
def mixed(synth_root, tmp_path_factory):
    """(records, cache): a split of two sizes, extracted (float32, upstream attention: bit-exact)."""
    from samcache.pipeline.extract import extract

    root = tmp_path_factory.mktemp("mixed")
    records = _mixed(synth_root, root / "data")
    extract(extract_cfg(root / "data", root / "mixed.zarr", "val"), progress=False)
    return records, root / "mixed.zarr"


def test_a_split_of_two_sizes_reads_and_scores_each_image_at_its_own_size(mixed):
    records, cache = mixed
    group = zarr.open_group(str(cache), mode="r")["val"]
    assert group["labels"].shape[1:] == (256, 512) and group["labels"].chunks == (1, 256, 512)
    for row, record in enumerate(records):  # plain zarr: labels[i, :H_i, :W_i], the rest void (0)
        h, w = (int(v) for v in group["original_sizes"][row])
        labels = group["labels"][row]
        assert np.array_equal(labels[:h, :w], np.asarray(Image.open(record.label_path)))
        assert not labels[h:].any() and not labels[:, w:].any()
    assert [tuple(s) for s in group["original_sizes"][:].tolist()] == [SMALL, (256, 512)]  # cropburg sorts first
    assert "<=512x256" in invoke("info", "--cache", cache, check=True).stdout

    cs, sam = get_class_set("seed5"), build_random_sam("tiny", seed=0)
    split = open_cache(cache).split("val")  # a head's scores: exact per image, each at its own size
    torch.manual_seed(0)
    head = torch.nn.Conv2d(256, cs.num_classes, 1)
    got = evaluate_head(head, cache, "val", "seed5", batch_size=2, device="cpu")
    conf = np.zeros((cs.num_classes, cs.num_classes), np.int64)
    for row, record in enumerate(records):
        with torch.no_grad():
            logits = head(torch.from_numpy(split.embedding(row).astype(np.float32))[None])
            full = sam.postprocess_masks(logits, tuple(split.input_size(row)), tuple(split.original_size(row)))
        pred = full[0].argmax(0).numpy()
        gt = cs.to_index(read_label_ids(record.label_path))
        keep = gt != IGNORE
        np.add.at(conf, (gt[keep], pred[keep]), 1)
    for c in cs.eval_indices:
        union = conf[c].sum() + conf[:, c].sum() - conf[c, c]
        assert np.isclose(got[cs.class_names[c]], conf[c, c] / union if union else np.nan, equal_nan=True)


def test_a_larger_image_than_the_split_was_created_for_is_one_line(mixed, tmp_path):
    records, made = mixed
    cache = tmp_path / "mixed.zarr"
    shutil.copytree(made, cache)
    shutil.copytree(made.parent / "data", tmp_path / "data")
    for part, suffix, path in (("leftImg8bit", "_leftImg8bit.png", records[1].image_path),  # larger than the split
                               ("gtFine", "_gtFine_labelIds.png", records[1].label_path),  # was created for
                               ("gtFine", "_gtFine_instanceIds.png", records[1].instance_path)):
        big = tmp_path / "data" / part / "val" / "bigburg"
        big.mkdir(exist_ok=True)
        array = np.asarray(Image.open(path))
        Image.fromarray(np.pad(array, ((0, 64), (0, 0), *(((0, 0),) * (array.ndim - 2))))).save(
            big / f"bigburg_000000_000019{suffix}")
    before = snapshot(cache / "val")
    proc = invoke("extract", "--data", tmp_path / "data", "--cache", cache, "--split", "val", "--model-type", "tiny",
                  "--dtype", "float32", "--device", "cpu", "--num-workers", "0")
    assert_one_line_error(proc, "bigburg_000000_000019 is 512x320", "--rebuild")
    assert snapshot(cache / "val") == before


@pytest.mark.slow
def test_zero_shot_on_a_split_of_two_sizes_replays_through_upstream(mixed, tmp_path):
    records, cache = mixed
    out = tmp_path / "zs"  # both sizes in one decoder batch
    invoke("zero-shot", "--cache", cache, "--prompt", "center", "--multimask", "single", "--images-per-batch", "2",
           "--device", "cpu", "--num-workers", "0", "--visualize", "0", "--out", out, check=True)
    cs, sam = get_class_set("seed5"), build_random_sam("tiny", seed=0)
    predictors = {}
    for row in read_csv(out / "detailed_results.csv"):
        record = next(r for r in records if r.image_id == row["image_id"])
        if record.image_id not in predictors:
            predictors[record.image_id] = SamPredictor(sam)
            predictors[record.image_id].set_image(read_image(record.image_path))
        points = np.array(json.loads(row["points"]), np.float64)
        mask = predictors[record.image_id].predict(points, np.ones(len(points)), multimask_output=False)[0][0]
        index = cs.to_index(read_label_ids(record.label_path))
        gt, valid = index == cs.class_names.index(row["class"]), index != IGNORE
        inter, union = int((mask & gt & valid).sum()), int(((mask | gt) & valid).sum())
        # prompts of two images share a decoder call here and not upstream: float32 sums may differ by an ulp,
        # which can flip a logit sitting at 0.0 (test_zero_shot allows two such pixels too)
        assert abs(int(row["intersection"]) - inter) <= 2 and abs(int(row["union"]) - union) <= 2


def test_a_format2_cache_is_read_as_it_is_and_upgrade_says_what_it_rewrites(cache16, synth_root, tmp_path):
    old = tmp_path / "old.zarr"
    shutil.copytree(cache16, old)
    root = zarr.open_group(str(old), mode="r+")  # what samcache wrote before format 3: no dataset attributes
    root.attrs.put({**{k: v for k, v in root.attrs.items() if k not in ("dataset", "condition", "label_ids",
                                                                        "label_void", "instance_offset")},
                    "samcache_format": 2})
    arrays = {name: snapshot(old / "val" / name) for name in ("labels", "embeddings", "instances")}
    info = invoke("info", "--cache", old, check=True).stdout
    assert "format 2" in info and "dataset: cityscapes" in info
    extract_args = ["extract", "--data", synth_root, "--cache", old, "--split", "val", "--model-type", "tiny",
                    "--dtype", "float16", "--device", "cpu", "--num-workers", "0"]
    assert_one_line_error(invoke(*extract_args), "format-2 cache", "samcache upgrade")
    said = invoke("upgrade", "--cache", old, check=True).stdout
    assert "samcache_format 2 -> 3" in said and "dataset cityscapes" in said and "no array" in said
    assert {name: snapshot(old / "val" / name) for name in arrays} == arrays
    attrs = zarr.open_group(str(old), mode="r").attrs
    assert (attrs["samcache_format"], attrs["dataset"], attrs["label_void"]) == (3, "cityscapes", 0)
    invoke(*extract_args, check=True)
    assert "already format 3" in invoke("upgrade", "--cache", old, check=True).stdout
