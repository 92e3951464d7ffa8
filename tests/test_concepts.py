"""Concept-prompt Phase 1 library pieces: phrase map, the two compositions, the instance result format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cityscapesscripts.helpers.labels import labels as CS_LABELS

from samcache.data.labels import IGNORE
from samcache.errors import SamcacheError
from samcache.evaluation.concepts import InstanceComposition, SemanticComposition, compose_semantic, phrase_map


def test_default_phrases_are_cityscapes_names_and_synonyms_add():
    expected = [lab.name for lab in sorted(CS_LABELS, key=lambda lab: lab.trainId)
                if not lab.ignoreInEval and 0 <= lab.id < 256]
    pm = phrase_map("cityscapes19")
    assert [p for _, p in pm.prompts()] == expected and len(expected) == 19
    pm = phrase_map("cityscapes19", {"person": ["pedestrian", "person"], "traffic sign": [" road sign "]})
    person = expected.index("person")
    assert pm.phrases[person] == ("person", "pedestrian")
    assert pm.phrases[expected.index("traffic sign")] == ("traffic sign", "road sign")
    assert len(pm.prompts()) == 21
    assert [p for _, p in phrase_map("seed5").prompts()] == ["road", "sidewalk", "building", "person", "car"]


@pytest.mark.parametrize("synonyms, message", [({"lorry": ["truck"]}, "unknown class 'lorry' in the phrase map"),
                                               ({"car": "auto"}, "must be a list of non-empty strings"),
                                               ({"car": ["", "auto"]}, "must be a list of non-empty strings")])
def test_bad_phrase_maps_are_one_line_errors(synonyms, message):
    with pytest.raises(SamcacheError, match=message) as e:
        phrase_map("cityscapes19", synonyms)
    assert "\n" not in str(e.value)


def _brute_instances(masks, conf, classes, thr, min_area):
    k, h, w = masks.shape
    out = np.full((h, w), IGNORE)
    for y in range(h):
        for x in range(w):
            best = -1.0
            for i in range(k):
                if masks[i, y, x] and conf[i] >= thr and masks[i].sum() >= min_area and conf[i] > best:
                    best, out[y, x] = conf[i], classes[i]
    return out


def test_instance_composition_refuses_a_threshold_above_one():
    with pytest.raises(SamcacheError):
        InstanceComposition(score_threshold=1.5)


def test_streamed_composition_of_grounding_results_equals_brute_force(monkeypatch):
    """segment_by_concepts' per-image path: candidates upsampled and painted a chunk at a time (chunk 5 here),
    ties in confidence across prompts included; with and without the instance masks."""
    import samcache.evaluation.concept_decoding as cd
    from samcache.features.backend import TextResult
    from samcache.features.families import backend_for

    rng = np.random.default_rng(3)
    h, w, q = 30, 45, 6
    monkeypatch.setattr(cd, "LOGIT_PIXELS", 5 * h * w)
    scores = rng.choice([0.2, 0.4, 0.6, 0.8], size=(4, q)).astype(np.float32)  # many equal confidences
    results = [TextResult(torch.from_numpy(rng.normal(0, 2, (q, 12, 12)).astype(np.float32)),
                          torch.from_numpy(scores[p]), presence, torch.zeros(q, 4), torch.zeros(12, 12))
               for p, presence in enumerate([1.0, 1.0, 0.5, 1.0])]
    classes = [3, 0, 3, 11]  # class 3 prompted by two phrases
    masks = np.concatenate([(torch.nn.functional.interpolate(r.mask_logits[:, None], (h, w), mode="bilinear",
                                                             align_corners=False)[:, 0].sigmoid() > 0.5).numpy()
                            for r in results])
    conf = np.concatenate([r.scores.numpy() * r.presence for r in results])
    cls = np.repeat(classes, q)
    for keep_masks, listed_from in ((True, None), (False, None), (True, 0.15)):
        rule = InstanceComposition(0.3, 40, listed_from)
        got = cd._compose_instances(backend_for("sam3_tiny"), results, classes, (h, w), rule, keep_masks)
        np.testing.assert_array_equal(got.label_map.numpy(), _brute_instances(masks, conf, cls, 0.3, 40))
        kept = np.flatnonzero((conf >= (listed_from or 0.3)) & (masks.reshape(len(masks), -1).sum(1) >= 40))
        assert 5 < len(kept) < len(conf)
        np.testing.assert_array_equal(got.instances.confidences.numpy(), conf[kept])
        np.testing.assert_array_equal(got.instances.classes.numpy(), cls[kept])
        if keep_masks:
            np.testing.assert_array_equal(got.instances.masks.numpy(), masks[kept])
        else:
            assert got.instances.masks is None


def test_semantic_composition_equals_brute_force():
    rng = np.random.default_rng(1)
    probs = rng.random((6, 7, 8)).astype(np.float32)
    classes = np.array([4, 2, 4, 0, 7, 2])  # classes 4 and 2 prompted twice (synonyms)
    got = compose_semantic(torch.from_numpy(probs), torch.from_numpy(classes), SemanticComposition(0.6)).numpy()
    for y in range(7):
        for x in range(8):
            best = {c: max(probs[i, y, x] for i in range(6) if classes[i] == c) for c in set(classes.tolist())}
            c, p = max(sorted(best.items()), key=lambda kv: kv[1])
            assert got[y, x] == (c if p >= 0.6 else IGNORE)
    with pytest.raises(SamcacheError, match="empty"):
        compose_semantic(torch.zeros(0, 2, 2), torch.zeros(0), SemanticComposition())


def _numpy2_shims(monkeypatch):
    """cityscapesScripts' instance evaluator predates numpy 2.4: np.in1d is gone, and its JSON dump of
    the matches meets numpy scalars. Neither shim changes a number it computes."""
    import json

    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as ev

    if not hasattr(np, "in1d"):
        monkeypatch.setattr(np, "in1d", lambda a, b: np.isin(a, b).ravel(), raising=False)

    def write_json(d, path):
        with open(path, "w") as f:
            json.dump(d, f, default=lambda o: o.item() if isinstance(o, np.generic) else o.__dict__)

    monkeypatch.setattr(ev, "writeDict2JSON", write_json)


def _evaluate(tmp_path, synth_root, pred_dir):
    import os

    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as ev

    gts = sorted((synth_root / "gtFine" / "val").rglob("*_gtFine_instanceIds.png"))
    args = ev.args
    args.predictionPath, args.predictionWalk = str(pred_dir.resolve()), None
    args.gtInstancesFile = str(tmp_path / "gtInstances.json")
    args.JSONOutput, args.quiet, args.colorized = False, True, False
    preds = [ev.getPrediction(str(gt), args) for gt in gts]
    cwd = os.getcwd()
    os.chdir(tmp_path)  # the evaluator writes matches.json into the working directory
    try:
        return ev.evaluateImgLists(preds, [str(g) for g in gts], args)["averages"]
    finally:
        os.chdir(cwd)


def test_instance_results_are_scored_by_cityscapes_evaluator(synth_root, tmp_path, monkeypatch):
    from PIL import Image

    _numpy2_shims(monkeypatch)

    from samcache.evaluation.instance_results import write_instances

    perfect, wrong = tmp_path / "perfect", tmp_path / "wrong"
    present = set()
    for gt in sorted((synth_root / "gtFine" / "val").rglob("*_gtFine_instanceIds.png")):
        ids = np.array(Image.open(gt))
        image_id = gt.name.replace("_gtFine_instanceIds.png", "")
        inst = [v for v in np.unique(ids) if v >= 1000]
        masks = np.stack([ids == v for v in inst]) if inst else np.zeros((0, *ids.shape), bool)
        labels = np.array([v // 1000 for v in inst])
        present |= set(labels.tolist())
        write_instances(perfect, image_id, masks, labels, np.linspace(0.9, 0.5, len(inst)))
        write_instances(wrong, image_id, masks, np.where(labels == 26, 24, 26), np.full(len(inst), 0.7))
    assert present, "the synthetic val split has no thing instances"
    good = _evaluate(tmp_path, synth_root, perfect)
    assert good["allAp"] == pytest.approx(1.0) and good["allAp50%"] == pytest.approx(1.0)
    bad = _evaluate(tmp_path, synth_root, wrong)
    assert bad["allAp"] < 0.5
    line = next(perfect.glob("*_pred.txt")).read_text().splitlines()[0].split(" ")
    assert line[0].startswith("masks/") and line[0].endswith("_0000.png") and line[2] == "0.900000"


def test_official_evaluators_run_through_samcache_under_numpy2(synth_root, tmp_path):
    """`python -m samcache.evaluation.official instance` runs cityscapesScripts' own main on perfect instance
    results (AP 1), and `pixel` on perfect label maps (IoU 1), where the bare scripts stop at np.in1d."""
    import os
    import shutil
    import subprocess
    import sys

    from PIL import Image

    from samcache.evaluation.instance_results import write_instances

    perfect, pixels = tmp_path / "instances", tmp_path / "predictions"
    for gt in sorted((synth_root / "gtFine" / "val").rglob("*_gtFine_instanceIds.png")):
        ids = np.array(Image.open(gt))
        image_id = gt.name.replace("_gtFine_instanceIds.png", "")
        inst = [v for v in np.unique(ids) if v >= 1000]
        write_instances(perfect, image_id, np.stack([ids == v for v in inst]), np.array([v // 1000 for v in inst]),
                        np.linspace(0.9, 0.5, len(inst)))
        (pixels / gt.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(gt.parent / gt.name.replace("instanceIds", "labelIds"), pixels / gt.parent.name / f"{image_id}_x.png")
    env = dict(os.environ, CITYSCAPES_DATASET=str(synth_root))
    runs = {}
    for kind, results in (("instance", perfect), ("pixel", pixels)):
        runs[kind] = subprocess.run([sys.executable, "-m", "samcache.evaluation.official", kind], cwd=tmp_path,
                                    env=dict(env, CITYSCAPES_RESULTS=str(results)), capture_output=True, text=True)
        assert runs[kind].returncode == 0, runs[kind].stderr[-800:]
    average = [line for line in runs["instance"].stdout.splitlines() if line.strip().startswith("average")][0]
    assert "1.000" in average, average
    assert (perfect / "resultInstanceLevelSemanticLabeling.json").is_file()  # beside the predictions
    assert not (synth_root / "evaluationResults").exists() and not (tmp_path / "matches.json").exists()
    for txt in sorted(perfect.glob("*_pred.txt"))[1:]:  # a --limit run: one image of the split scored
        txt.unlink()
    subset = subprocess.run([sys.executable, "-m", "samcache.evaluation.official", "instance", "--scored-only",
                             "val"], cwd=tmp_path, env=dict(env, CITYSCAPES_RESULTS=str(perfect)),
                            capture_output=True, text=True)
    assert subset.returncode == 0, subset.stderr[-800:]
    assert "1.000" in [line for line in subset.stdout.splitlines() if line.strip().startswith("average")][0]
    scores = [line.split(":")[1].split() for line in runs["pixel"].stdout.splitlines() if "Score Average" in line]
    assert scores and all(s[0] == "1.000" for s in scores), runs["pixel"].stdout[-500:]  # classes, categories
    bad = subprocess.run([sys.executable, "-m", "samcache.evaluation.official"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: usage")


def test_instance_writer_refuses_bad_input_and_writes_nothing(tmp_path):
    from samcache.evaluation.instance_results import write_instances

    out = tmp_path / "out"
    with pytest.raises(SamcacheError, match="2 masks, 1 label ids"):
        write_instances(out, "a_000000_000001", np.zeros((2, 4, 4), bool), np.array([26]), np.array([0.5, 0.4]))
    with pytest.raises(SamcacheError, match="finite"):
        write_instances(out, "a_000000_000001", np.zeros((1, 4, 4), bool), np.array([26]), np.array([np.nan]))
    assert not out.exists()
