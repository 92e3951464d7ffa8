"""One sweep cell with the full-size SAM 3 (random weights, an official-format sam3.pt saved from a random-init
model): the cell scored from stored outputs equals a full zero-shot text run with that setting. Slow: the
full-size encoder and detector on the CPU (about 40 s to encode and 30 s per text pass of 5 classes)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("sam3")

from conftest import extract_cfg, invoke  # noqa: E402
from test_sam3 import to_official_state_dict  # noqa: E402

TEXT = ["--prompt", "text", "--num-workers", "0", "--visualize", "0", "--quiet", "--limit", "1"]


@pytest.mark.slow
def test_a_full_size_sweep_cell_equals_the_full_run(synth_root, tmp_path):
    from samcache.features.sam3.build import build_random_sam3
    from samcache.pipeline.extract import extract

    ckpt = tmp_path / "sam3.pt"
    torch.save(to_official_state_dict(build_random_sam3("sam3", 0)), ckpt)
    cache = tmp_path / "sam3.zarr"
    extract(extract_cfg(synth_root, cache, "val", model_type="sam3", checkpoint=str(ckpt), limit=1,
                        attention="sdpa"), progress=False)
    common = ["--cache", cache, "--split", "val", "--checkpoint", ckpt, *TEXT]
    kept = tmp_path / "kept"
    invoke("zero-shot", *common, "--compose", "fused", "--score-threshold", "0.1", "--keep-scores", "--out", kept,
           check=True)
    sweep = tmp_path / "sweep"
    invoke("sweep", kept, "--compose", "fused", "--score-threshold", "0.1,0.3", "--out", sweep, "--quiet",
           check=True)
    cell = next(c for c in json.loads((sweep / "run.json").read_text())["cells"] if c["score_threshold"] == 0.3)
    full = tmp_path / "full"
    invoke("zero-shot", *common, "--compose", "fused", "--score-threshold", "0.3", "--out", full, check=True)
    ious = {r["class"]: r["iou_semantic"] for r in json.loads((full / "run.json").read_text())["summary"]}
    assert {n: cell[n if n != "mean" else "miou"] for n in ious} == ious
