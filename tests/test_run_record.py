"""run.json through the typed RunRecord: an older record reads and writes back byte for byte (keys, values and
their order), and the skeleton fills in the keys it owns in the places the stage left for them."""

import json

from samcache.pipeline.runs import RunRecord, read_record, write_record

OLD_HEAD = {"stage": "head", "status": "complete", "started": "2025-01-01T00:00:00+00:00", "seconds": 1.5,
            "epochs": 2, "best_epoch": None, "classes": "seed5", "cache": "c.zarr", "random_weights": True,
            "encoder_passes": 0, "miou": 0.25, "summary": [{"class": "mean", "iou": 0.25}], "config": {"lr": 0.001},
            "provenance": {"split": "val"}, "out": "runs/x", "checkpoints": ["head_epoch_2.pt"],
            "outputs": ["run.json"]}


def test_an_older_record_round_trips_byte_for_byte(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(OLD_HEAD, indent=2))
    record = RunRecord.read(tmp_path)
    assert record.stage == "head" and record.seconds == 1.5 and record["epochs"] == 2 and record.get("nope") is None
    out = tmp_path / "again"
    out.mkdir()
    write_record(out, record)
    assert (out / "run.json").read_text() == json.dumps(OLD_HEAD, indent=2)
    assert read_record(out) == OLD_HEAD


def test_placeholders_keep_their_place_and_unset_facts_are_left_out():
    record = RunRecord.from_json({"stage": "toy", "started": None, "knob": 3, "seconds": None, "out": None})
    record.seconds, record.out, record.started = 2.0, "runs/toy", "now"
    assert list(record.to_json()) == ["stage", "started", "knob", "seconds", "out", "status"]  # unplaced: last
    assert record.to_json() == {"stage": "toy", "status": "complete", "started": "now", "knob": 3, "seconds": 2.0,
                                "out": "runs/toy"}
