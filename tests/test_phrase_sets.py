"""Prompt sets as data: the shipped phrases YAML files, a class's phrases replaced by a set's, the set recorded."""

from __future__ import annotations

import json

import pytest
import yaml
from cityscapesscripts.helpers.labels import labels as CS_LABELS

from conftest import assert_one_line_error, invoke


def test_shipped_sets_name_every_cityscapes_class_and_segearth_adds_its_synonyms():
    from samcache.evaluation.concepts import phrase_map
    from samcache.evaluation.phrase_sets import load_phrase_set

    names = [lab.name for lab in sorted(CS_LABELS, key=lambda lab: lab.trainId) if not lab.ignoreInEval
             and 0 <= lab.id < 256]
    plain = phrase_map("cityscapes19", base=load_phrase_set("class_names", "cityscapes19"))
    assert [p for _, p in plain.prompts()] == names
    seg = phrase_map("cityscapes19", base=load_phrase_set("segearth_ov3_cityscapes", "cityscapes19"))
    got = {names[c]: list(ps) for c, ps in seg.phrases.items()}
    assert got["vegetation"] == ["vegetation", "tree", "hedge"]
    assert got["terrain"] == ["terrain", "grass", "horizontal vegetation", "soil", "sand"]
    assert all(got[n] == [n] for n in names if n not in ("vegetation", "terrain"))
    five = phrase_map("seed5", base=load_phrase_set("segearth_ov3_cityscapes", "seed5"))  # other classes skipped
    assert [p for _, p in five.prompts()] == ["road", "sidewalk", "building", "person", "car"]


def test_a_fused_run_records_its_settings_and_phrase_set_and_a_file_set_replaces_phrases(sam3_cache, tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("car: [automobile, vehicle]\nsky: heaven\n")
    out = tmp_path / "run"
    invoke("zero-shot", "--cache", sam3_cache, "--prompt", "text", "--phrase-set", mine, "--phrase", "road=street",
           "--compose", "fused", "--score-threshold", "0.3", "--no-fused-presence", "--num-workers", "0",
           "--visualize", "0", "--out", out, "--quiet", check=True)
    record = json.loads((out / "run.json").read_text())
    assert record["phrase_set"] == str(mine) and record["compose"] == "fused"
    assert record["composition"] == {"rule": "fused", "score_threshold": 0.3, "fused_presence": False,
                                     "fused_instances": True, "fused_semantic": True, "fused_threshold": 0.0}
    assert yaml.safe_load((out / "config.yaml").read_text())["phrase_set"] == str(mine)
    assert yaml.safe_load((out / "phrases.yaml").read_text()) == {
        "road": ["road", "street"], "sidewalk": ["sidewalk"], "building": ["building"], "person": ["person"],
        "car": ["automobile", "vehicle"]}  # seed5: sky is not evaluated


@pytest.mark.parametrize("content, needle", [
    (None, "phrase set 'nope' not found"),
    ("lorry: [truck]\n", "unknown class 'lorry'"),
    ("car: []\n", "phrases for 'car' must be a non-empty list"),
    ("[car]\n", "expected a mapping"),
])
def test_bad_phrase_sets_are_one_line_and_write_nothing(sam3_cache, tmp_path, content, needle):
    name = "nope"
    if content is not None:
        name = str(tmp_path / "set.yaml")
        (tmp_path / "set.yaml").write_text(content)
    proc = invoke("zero-shot", "--cache", sam3_cache, "--prompt", "text", "--phrase-set", name,
                  "--out", tmp_path / "run")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "run").exists()
