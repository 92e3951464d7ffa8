"""GTA5, BDD100K and ACDC readers against fixtures written here by hand in each dataset's documented layout (never
by samcache's synth): the files listed per split, the pixels and label ids read, the label ids mapped onto the
evaluated classes (the references: cityscapesScripts' table, BDD100K's documented train-id list), and one line
naming the file for each kind of bad input."""

import numpy as np
import pytest
import scipy.io
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from conftest import assert_one_line_error, invoke
from samcache.data.datasets import get_dataset
from samcache.data.labels import IGNORE, get_class_set
from samcache.errors import SamcacheError

# BDD100K's documentation (doc.bdd100k.com, "Label Format", semantic segmentation), typed from it
BDD_TRAIN_IDS = ["road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                 "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                 "bicycle"]
PALETTE = np.zeros((256, 3), np.uint8)  # GTA5's labels: palette PNGs coloured as Cityscapes
for _lab in CS_LABELS:
    if 0 <= _lab.id < 256:
        PALETTE[_lab.id] = _lab.color
ROAD, CAR, SKY = (name2label[n].id for n in ("road", "car", "sky"))


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _palette_png(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", (values.shape[1], values.shape[0]), values.astype(np.uint8).tobytes())
    image.putpalette(PALETTE.ravel().tolist())
    image.save(path)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _gta5(root):
    """images/00001.png ... with palette labels and the split file as MATLAB writes it (doubles, (n, 1))."""
    labels = {}
    for number, (h, w) in ((1, (30, 40)), (2, (24, 36)), (3, (30, 40))):
        name = f"{number:05d}.png"
        _png(root / "images" / name, _rgb(h, w, number))
        values = np.full((h, w), ROAD, np.uint8)
        values[: h // 3] = SKY
        values[h // 2:, : w // 2] = CAR
        _palette_png(root / "labels" / name, values)
        labels[f"{number:05d}"] = values
    scipy.io.savemat(root / "split.mat", {"trainIds": np.array([[3.0], [1.0]]), "valIds": np.array([[2.0]]),
                                          "testIds": np.zeros((0, 1))})
    return labels


def test_gta5_reads_its_layout_and_split_file(tmp_path):
    labels = _gta5(tmp_path)
    gta5 = get_dataset("gta5")
    train = gta5.list_images(tmp_path, "train")
    assert [r.image_id for r in train] == ["00001", "00003"]
    assert [r.image_id for r in gta5.list_images(tmp_path, "val")] == ["00002"]
    example = gta5.load_example(gta5.list_images(tmp_path, "val")[0])
    assert np.array_equal(example.image, _rgb(24, 36, 2)) and np.array_equal(example.label_ids, labels["00002"])
    assert not example.instance_ids.any()  # GTA5 has no instances
    cs = get_class_set("cityscapes19", gta5)  # Cityscapes labelIds, evaluated as cityscapesScripts evaluates them
    for lab in CS_LABELS:
        if 0 <= lab.id < 256:
            assert cs.lut[lab.id] == (IGNORE if lab.ignoreInEval else lab.trainId)
    assert not cs.is_thing(cs.class_names.index("car"))  # no instance files: prompted per connected component


def test_gta5_bad_input_is_one_line_naming_the_file(tmp_path):
    labels = _gta5(tmp_path)
    gta5 = get_dataset("gta5")
    with pytest.raises(SamcacheError, match=r"split\.mat lists .*train, val"):
        gta5.list_images(tmp_path, "extra")
    bad = labels["00001"].copy()
    bad[2, 5] = 40  # a palette index beyond Cityscapes' labelIds
    _palette_png(tmp_path / "labels" / "00001.png", bad)
    with pytest.raises(SamcacheError, match=r"labels/00001\.png holds value 40 at \(x=5, y=2\)"):
        gta5.load_example(gta5.list_images(tmp_path, "train")[0])
    (tmp_path / "labels" / "00003.png").unlink()  # an image without its label
    with pytest.raises(SamcacheError, match=r"images/00003\.png has no label file: .*labels/00003\.png is missing"):
        gta5.list_labelled(tmp_path, "train")
    (tmp_path / "images" / "00002.png").unlink()  # a listed image that is not there
    with pytest.raises(SamcacheError, match=r"split\.mat lists image 00002 of split val, but .*00002\.png is missing"):
        gta5.list_images(tmp_path, "val")
    (tmp_path / "split.mat").unlink()
    with pytest.raises(SamcacheError, match=r"missing GTA5 split file .*split\.mat"):
        gta5.list_images(tmp_path, "train")


def _bdd(root):
    masks = {}
    for k, name in enumerate(("7d06fefd-f7be05a6", "0a0a0b1a-7c39d841")):
        image = _rgb(18, 32, k)
        path = root / "images" / "10k" / "val" / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, quality=95)
        mask = np.full((18, 32), BDD_TRAIN_IDS.index("road"), np.uint8)
        mask[:6] = BDD_TRAIN_IDS.index("sky")
        mask[10:, 4:12] = BDD_TRAIN_IDS.index("car")
        mask[0, 0] = 255  # unknown
        _png(root / "labels" / "sem_seg" / "masks" / "val" / f"{name}.png", mask)
        masks[name] = mask
    (root / "images" / "10k" / "test").mkdir(parents=True)  # the test split has no public masks
    return masks


def test_bdd100k_reads_jpegs_and_train_id_masks(tmp_path):
    masks = _bdd(tmp_path)
    bdd = get_dataset("bdd100k")
    records = bdd.list_images(tmp_path, "val")
    assert [r.image_id for r in records] == sorted(masks)
    example = bdd.load_example(records[0])
    assert example.image.shape == (18, 32, 3) and np.array_equal(example.label_ids, masks[records[0].image_id])
    expected = np.asarray(Image.open(records[0].image_path).convert("RGB"))  # PIL's own JPEG decode
    assert np.array_equal(example.image, expected)
    cs = get_class_set("cityscapes19", bdd)  # the documented train ids are the 19 evaluated classes
    assert [cs.class_names[cs.lut[t]] for t in range(19)] == BDD_TRAIN_IDS and cs.lut[255] == IGNORE
    assert [int(v) for v in cs.pred_label_ids] == list(range(19))  # predictions in train ids, unlabelled 255
    assert int(cs.to_label_ids(np.array([IGNORE], np.uint8))[0]) == 255
    seed5 = get_class_set("seed5", bdd)
    assert seed5.lut[BDD_TRAIN_IDS.index("sky")] == seed5.class_names.index("other")


def test_bdd100k_bad_input_is_one_line_naming_the_file(tmp_path):
    masks = _bdd(tmp_path)
    bdd = get_dataset("bdd100k")
    with pytest.raises(SamcacheError, match=r"no semantic masks for split test: .*masks/test is missing"):
        bdd.list_images(tmp_path, "test")
    name = sorted(masks)[0]
    bad = masks[name].copy()
    bad[3, 7] = 19
    _png(tmp_path / "labels" / "sem_seg" / "masks" / "val" / f"{name}.png", bad)
    with pytest.raises(SamcacheError,
                       match=rf"{name}\.png holds value 19 at \(x=7, y=3\), which is not a label id of BDD100K \(0\.\.18, 255\)"):
        bdd.load_example(bdd.record_for(tmp_path, "val", name))
    (tmp_path / "labels" / "sem_seg" / "masks" / "val" / f"{name}.png").unlink()
    with pytest.raises(SamcacheError, match=rf"{name}\.jpg has no label file"):
        bdd.list_labelled(tmp_path, "val")


def _acdc(root):
    labels = {}
    for condition, sequence, frame in (("fog", "GOPR0475", "000041"), ("night", "GOPR0351", "000159"),
                                       ("night", "GOPR0351", "000160")):
        image_id = f"{sequence}_frame_{frame}"
        _png(root / "rgb_anon" / condition / "val" / sequence / f"{image_id}_rgb_anon.png", _rgb(27, 48, int(frame)))
        values = np.full((27, 48), ROAD, np.uint8)
        values[:9] = SKY
        gt = root / "gt" / condition / "val" / sequence
        _png(gt / f"{image_id}_gt_labelIds.png", values)
        _png(gt / f"{image_id}_gt_labelTrainIds.png", np.zeros((27, 48), np.uint8))  # beside it: not read
        labels[image_id] = values
    _png(root / "rgb_anon" / "fog" / "val_ref" / "GOPR0475" / "GOPR0475_frame_000041_ref_rgb_anon.png",
         _rgb(27, 48, 0))  # the normal-condition reference: never listed
    return labels


def test_acdc_reads_each_condition_and_all_of_them(tmp_path):
    labels = _acdc(tmp_path)
    acdc_fog, acdc_night = get_dataset("acdc", "fog"), get_dataset("acdc", "night")
    assert [r.image_id for r in acdc_fog.list_images(tmp_path, "val")] == ["GOPR0475_frame_000041"]
    night = acdc_night.list_images(tmp_path, "val")
    assert [r.image_id for r in night] == ["GOPR0351_frame_000159", "GOPR0351_frame_000160"]
    example = acdc_night.load_example(night[1])
    assert np.array_equal(example.label_ids, labels["GOPR0351_frame_000160"])
    assert np.array_equal(example.image, _rgb(27, 48, 160))
    record = get_dataset("acdc", "all").record_for(tmp_path, "val", "GOPR0351_frame_000159")  # finds its condition
    assert record.image_path == night[0].image_path and record.label_path == night[0].label_path
    assert acdc_fog.domain == "acdc-fog" and get_dataset("acdc").domain == "acdc"


def test_acdc_bad_input_is_one_line_naming_the_file(tmp_path):
    labels = _acdc(tmp_path)
    with pytest.raises(SamcacheError, match=r"unknown ACDC condition 'haze'; choose one of all, fog, night, rain"):
        get_dataset("acdc", "haze")
    with pytest.raises(SamcacheError, match=r"no ACDC split directory .*rgb_anon/rain/val"):
        get_dataset("acdc").list_images(tmp_path, "val")  # all four conditions: rain and snow are not there
    with pytest.raises(SamcacheError, match=r"val_ref folders hold the reference images"):
        get_dataset("acdc", "fog").list_images(tmp_path, "val_ref")
    bad = labels["GOPR0475_frame_000041"].copy()
    bad[1, 2] = 34
    gt = tmp_path / "gt" / "fog" / "val" / "GOPR0475" / "GOPR0475_frame_000041_gt_labelIds.png"
    _png(gt, bad)
    acdc = get_dataset("acdc", "fog")
    with pytest.raises(SamcacheError,
                       match=r"_gt_labelIds\.png holds value 34 at \(x=2, y=1\), which is not a label id of ACDC \(0\.\.33\)"):
        acdc.load_example(acdc.list_images(tmp_path, "val")[0])
    gt.unlink()
    with pytest.raises(SamcacheError, match=r"_rgb_anon\.png has no label file: .*_gt_labelIds\.png is missing"):
        acdc.list_labelled(tmp_path, "val")


def test_extract_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path):
    """The same checks seen from the command line: one Error line, no cache made."""
    _acdc(tmp_path / "acdc")
    cache = tmp_path / "c.zarr"
    common = ["--cache", cache, "--split", "val", "--model-type", "tiny", "--device", "cpu", "--num-workers", "0"]
    proc = invoke("extract", "--dataset", "acdc", "--condition", "haze", "--data", tmp_path / "acdc", *common)
    assert_one_line_error(proc, "--condition", "'fog'")
    proc = invoke("extract", "--dataset", "gta5", "--condition", "fog", "--data", tmp_path / "acdc", *common)
    assert_one_line_error(proc, "--condition fog does not apply to --dataset gta5")
    (tmp_path / "acdc" / "gt" / "fog" / "val" / "GOPR0475" / "GOPR0475_frame_000041_gt_labelIds.png").unlink()
    proc = invoke("extract", "--dataset", "acdc", "--condition", "fog", "--data", tmp_path / "acdc", *common)
    assert_one_line_error(proc, "GOPR0475_frame_000041_rgb_anon.png has no label file")
    _gta5(tmp_path / "gta5")
    proc = invoke("extract", "--dataset", "gta5", "--data", tmp_path / "gta5", *common[:2], "--split", "extra",
                  *common[4:])
    assert_one_line_error(proc, "GTA5 has no split 'extra'", "split.mat")
    assert not cache.exists()


@pytest.mark.parametrize("name", ["gta5", "bdd100k", "acdc"])
def test_synth_writes_scenes_each_reader_takes_back_in_its_own_ids(name, tmp_path):
    """`samcache synth --dataset NAME`: the scenes (drawn in Cityscapes labelIds) come back through the dataset's
    reader, mapped onto the same evaluated classes; GTA5's come in two sizes."""
    from samcache.data.synth import make_scene, write_synthetic

    invoke("synth", "--dataset", name, tmp_path / name, "--train", 0, "--val", 4, "--size", "64x48", "--quiet",
           check=True)
    dataset = get_dataset(name)
    records = dataset.list_labelled(tmp_path / name, "val")
    assert len(records) == 4
    theirs, ours = get_class_set("cityscapes19", dataset), get_class_set("cityscapes19")
    sizes = set()
    for index in range(4):
        record = next(r for r in records if r.image_id == dataset.synthetic_id("val", index))
        example = dataset.load_example(record)
        _, labels, _ = make_scene(0, "val", index, dataset.synthetic_size(index, (64, 48)))
        assert np.array_equal(theirs.to_index(example.label_ids), ours.to_index(labels))
        sizes.add(example.image.shape[:2])
    assert sizes == ({(48, 64), (36, 48)} if name == "gta5" else {(48, 64)})
    with pytest.raises(SamcacheError, match="holds synthetic data"):  # another layout into it: refused
        write_synthetic(tmp_path / name, {"val": 4}, size=(64, 48), progress=False)
