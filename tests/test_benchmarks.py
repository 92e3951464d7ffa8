"""The GPU benchmark's helpers run on the CPU too (the GPU machine is lent rarely: its script must not break)."""

import numpy as np
import zarr

from benchmarks.gpu_data import replicated_cache
from samcache.cache.reader import open_cache


def test_replicated_cache_cycles_the_source_rows(cache16, tmp_path):
    target = replicated_cache(cache16, tmp_path / "rep.zarr", train=5, val=2)
    source = zarr.open_group(str(cache16), mode="r")["train"]
    copy = zarr.open_group(str(target), mode="r")
    n = source["embeddings"].shape[0]
    for k in range(5):
        assert np.array_equal(copy["train"]["embeddings"][k], source["embeddings"][k % n])
        assert np.array_equal(copy["train"]["labels"][k], source["labels"][k % n])
    assert copy["val"]["done"][:].all() and open_cache(str(target)).split("train").require_complete() == list(range(5))


def test_gpu_rows_survive_errors_deadlines_and_missing_inputs(tmp_path):
    """One failing row loses nothing else; rows past the deadline or without their inputs are marked;
    both files are complete after every row (a run cut off keeps what it measured)."""
    import json

    import torch

    from benchmarks.gpu_results import JSONL, MARKDOWN, Results, Row, Runner

    now = [0.0]
    seen = []

    def ok(state):
        now[0] += 10
        state["made"] = 1
        seen.append(sorted(json.loads(line)["row"] for line in open(tmp_path / JSONL)) if (tmp_path / JSONL).exists()
                    else [])
        return [("x", 1), ("y", "2")]

    def fails(state):
        raise RuntimeError("CUDA out of memory\nmore lines")

    results = Results(tmp_path, "header")
    runner = Runner(results, torch.device("cpu"), deadline_s=30, clock=lambda: now[0])
    statuses = [runner.run(row) for row in [
        Row("a", ok, 5), Row("b", fails, 1), Row("c", ok, 5, needs=("made",)), Row("d", ok, 5, needs=("never",)),
        Row("e", ok, 25), Row("f", ok, 5, cap="10 GiB")]]
    assert statuses[:2] == ["ok", "error"] and statuses[2] == "ok"
    assert statuses[3].startswith("skipped: needs never") and statuses[4].startswith("skipped: deadline")
    assert statuses[5] == "ok"  # 20 s used, 10 left: a 5 s row still runs
    assert seen[1] == ["a", "a", "b"]  # written before the next row started
    rows = [json.loads(line) for line in open(tmp_path / JSONL)]
    assert [(r["row"], r["status"]) for r in rows][:3] == [("a", "ok"), ("a", "ok"), ("b", "error")]
    assert rows[2]["value"] == "RuntimeError: CUDA out of memory" and rows[0]["peak_gib"] == "-"
    assert rows[-1]["cap"] == "10 GiB" and rows[-1]["seconds"] == "10.0"
    table = (tmp_path / MARKDOWN).read_text()
    assert table.startswith("header") and table.count("\n| ") == len(rows) + 2  # + column names, separator


def test_bench_gpu_refuses_without_cuda_in_one_line(capsys):
    import torch

    from benchmarks.bench_gpu import main

    if torch.cuda.is_available():
        return
    assert main(["--quick"]) == 1
    assert capsys.readouterr().err.strip().startswith("Error: bench_gpu needs a CUDA GPU")


def test_gpu_first_run_brings_back_at_most_8_files_and_starts_in_one_short_command():
    """The lent machine returns at most 8 files from RESULTS_DIR, and one command of at most 2,000 characters."""
    import re
    from pathlib import Path

    from benchmarks.gpu_results import JSONL, MARKDOWN

    root = Path(__file__).resolve().parents[1]
    script = (root / "benchmarks" / "gpu_first_run.sh").read_text()
    files = set(re.findall(r'"\$RESULTS/([\w.-]+)"', script)) | {JSONL, MARKDOWN}
    assert {"env.txt", "test_cuda.txt", "summary.txt", "bench_gpu.log"} <= files and len(files) <= 8
    assert "--results \"$RESULTS\"" in script and "--target \"$SITE\"" in script and "--no-index" in script
    from docs_text import docs_text

    command = re.search(r"```bash\n(bash benchmarks/gpu_first_run\.sh [^\n]*)\n```", docs_text()).group(1)
    assert len(command) < 2000 and command.split("#")[0].strip() in script
