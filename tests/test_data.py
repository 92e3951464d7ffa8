"""Cityscapes layout reader, official class table, synthetic generator."""

import json

import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from conftest import assert_one_line_error, invoke, snapshot

from samcache.data.cityscapes import list_images, read_instance_ids, read_label_ids
from samcache.data.labels import IGNORE, get_class_set
from samcache.data.synth import make_scene, write_synthetic


def test_seed5_maps_official_ids():
    cs = get_class_set("seed5")
    assert cs.class_names == ("road", "sidewalk", "building", "person", "car", "other")
    for name in ("road", "sidewalk", "building", "person", "car"):
        assert cs.lut[name2label[name].id] == cs.class_names.index(name)
    assert cs.lut[name2label["sky"].id] == 5  # valid but not seed5 -> other
    assert cs.lut[name2label["ego vehicle"].id] == IGNORE  # void
    assert cs.eval_indices == [0, 1, 2, 3, 4]


def test_cityscapes19_is_the_official_train_id_table():
    cs = get_class_set("cityscapes19")
    assert cs.num_classes == 19
    for lab in CS_LABELS:
        if 0 <= lab.id < 256:
            want = lab.trainId if not lab.ignoreInEval else IGNORE
            assert cs.lut[lab.id] == want, lab.name
    assert [cs.pred_label_ids[t] for t in range(19)] == [name2label[n].id for n in cs.class_names]


def test_synthetic_layout_and_determinism(tmp_path):
    write_synthetic(tmp_path / "a", {"train": 2, "val": 1}, size=(256, 128), seed=3, progress=False)
    write_synthetic(tmp_path / "b", {"train": 2}, size=(256, 128), seed=3, progress=False)
    recs = list_images(tmp_path / "a", "train")
    assert [r.image_id for r in recs] == sorted(r.image_id for r in recs)
    for r in recs:
        assert r.image_path.name == f"{r.image_id}_leftImg8bit.png"
        assert r.label_path.parent.parent.parent.name == "gtFine"
        assert (r.label_path.parent / f"{r.image_id}_gtFine_color.png").exists()
        other = tmp_path / "b" / r.image_path.relative_to(tmp_path / "a")
        assert np.array_equal(np.asarray(Image.open(r.image_path)), np.asarray(Image.open(other)))
    labels = read_label_ids(recs[0].label_path)
    inst = read_instance_ids(recs[0].instance_path)
    # instanceIds agree with labelIds: stuff carries its labelId, things labelId*1000+k
    assert np.array_equal(np.where(inst >= 1000, inst // 1000, inst), labels)
    assert len(np.unique(inst[labels == name2label["car"].id])) >= 1


def test_synthetic_scenes_hold_every_class():
    seen = set()
    for i in range(4):
        _, labels, _ = make_scene(0, "train", i, (512, 256))
        seen |= set(np.unique(labels).tolist())
    for name in ("sky", "building", "road", "sidewalk", "vegetation", "car", "person"):
        assert name2label[name].id in seen, name


def test_synth_refuses_other_settings_without_overwrite_and_never_mixes_sizes(tmp_path):
    data = tmp_path / "data"
    invoke("synth", data, "--train", "2", "--val", "1", "--size", "64x32", check=True)
    before = snapshot(data)
    proc = invoke("synth", data, "--train", "1", "--size", "96x48")
    assert_one_line_error(proc, "holds synthetic data (train 2, val 1 at 64x32", "--overwrite")
    assert snapshot(data) == before
    again = invoke("synth", data, "--train", "2", "--val", "1", "--size", "64x32")  # the same: completes, no change
    assert again.returncode == 0 and snapshot(data) == before
    invoke("synth", data, "--train", "1", "--val", "0", "--size", "96x48", "--overwrite", check=True)
    pngs = sorted(data.rglob("*.png"))
    assert pngs and {Image.open(p).size for p in pngs} == {(96, 48)}
    assert not list((data / "leftImg8bit").glob("val/*/*.png"))
    assert json.loads((data / "samcache-synth.json").read_text())["size"] == [96, 48]
