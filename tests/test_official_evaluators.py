"""`python -m samcache.evaluation.official` as the README runs it: relative CITYSCAPES_DATASET and
CITYSCAPES_RESULTS, from the working folder. The result JSON lands beside the predictions and holds what
cityscapesScripts' own evaluateImgLists computes on the same files; --help is a usage text with exit 0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from test_concepts import _evaluate, _numpy2_shims  # cityscapesScripts' instance evaluator, called directly
from test_head import _official  # cityscapesScripts' pixel evaluator, called directly

from samcache.evaluation.official import main


def _one_image_dataset(synth_root, root):
    """A dataset folder holding the ground truth of one synthetic val image; returns (image id, city)."""
    gt = sorted((synth_root / "gtFine" / "val").rglob("*_gtFine_instanceIds.png"))[0]
    image_id, city = gt.name.replace("_gtFine_instanceIds.png", ""), gt.parent.name
    shutil.copytree(gt.parent, root / "gtFine" / "val" / city,
                    ignore=lambda folder, names: [n for n in names if not n.startswith(image_id)])
    return image_id, city


def _official_cli(kind: str, cwd, results: str):
    env = dict(os.environ, CITYSCAPES_DATASET="data", CITYSCAPES_RESULTS=results)
    return subprocess.run([sys.executable, "-m", "samcache.evaluation.official", kind], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_relative_results_write_the_json_beside_the_predictions(synth_root, tmp_path, monkeypatch):
    from samcache.evaluation.instance_results import write_instances

    image_id, city = _one_image_dataset(synth_root, tmp_path / "data")
    gt_dir = tmp_path / "data" / "gtFine" / "val" / city
    ids = np.array(Image.open(gt_dir / f"{image_id}_gtFine_instanceIds.png"))
    inst = [v for v in np.unique(ids) if v >= 1000]
    assert len(inst) >= 2, "the synthetic image needs two instances"
    labels = np.array([v // 1000 for v in inst])
    labels[::2] = np.where(labels[::2] == 26, 24, 26)  # every other instance of the wrong class: 0 < AP < 1
    write_instances(tmp_path / "runs" / "instances", image_id, np.stack([ids == v for v in inst]), labels,
                    np.linspace(0.9, 0.5, len(inst)))
    pixels = tmp_path / "runs" / "predictions" / city
    pixels.mkdir(parents=True)
    label_ids = np.array(Image.open(gt_dir / f"{image_id}_gtFine_labelIds.png"))
    label_ids[: label_ids.shape[0] // 3] = 26  # the top third predicted as car
    Image.fromarray(label_ids).save(pixels / f"{image_id}_labelIds.png")

    instance = _official_cli("instance", tmp_path, "runs/instances")
    assert instance.returncode == 0 and "Traceback" not in instance.stderr, instance.stderr[-800:]
    pixel = _official_cli("pixel", tmp_path, "runs/predictions")
    assert pixel.returncode == 0 and "Traceback" not in pixel.stderr, pixel.stderr[-800:]
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")}
    assert written == {"runs/instances/resultInstanceLevelSemanticLabeling.json",
                       "runs/predictions/resultPixelLevelSemanticLabeling.json"}  # no matches.json, none in data/

    ours = json.loads((tmp_path / "runs/instances/resultInstanceLevelSemanticLabeling.json").read_text())["averages"]
    _numpy2_shims(monkeypatch)
    reference = _evaluate(tmp_path, tmp_path / "data", tmp_path / "runs" / "instances")
    assert 0 < reference["allAp"] < 1
    assert ours["allAp"] == pytest.approx(reference["allAp"]) and ours["allAp50%"] == pytest.approx(
        reference["allAp50%"])
    scores = json.loads((tmp_path / "runs/predictions/resultPixelLevelSemanticLabeling.json").read_text())
    reference = _official([pixels / f"{image_id}_labelIds.png"], tmp_path / "data", "cityscapes19")
    assert 0 < reference["car"] < 1
    for name, value in reference.items():
        assert np.isnan(scores["classScores"][name]) if np.isnan(value) else \
            scores["classScores"][name] == pytest.approx(value)


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["instance", "--help"]])
def test_help_is_a_usage_text_and_exit_0(argv, capsys):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m samcache.evaluation.official {pixel|instance}")
    assert "CITYSCAPES_RESULTS" in out and "--scored-only SPLIT" in out


@pytest.mark.parametrize("argv, env, needle", [([], {}, "Error: usage: python -m samcache.evaluation.official"),
                                               (["bogus"], {}, "Error: usage"),
                                               (["pixel"], {"CITYSCAPES_RESULTS": "nowhere"},
                                                "Error: CITYSCAPES_RESULTS=nowhere is not a folder")])
def test_bad_invocations_are_one_line(argv, env, needle, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(needle) and err.count("\n") == 1
