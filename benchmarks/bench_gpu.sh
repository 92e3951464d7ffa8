#!/usr/bin/env bash
# `make bench-gpu` on a GPU machine you keep: the full bench_gpu run under the machine's own python3 and
# PyTorch (not the pinned venv); table appended to benchmarks/RESULTS.md, rows in RESULTS_DIR as they end.
# On a lent GPU, whose files come back only from one folder, run benchmarks/gpu_first_run.sh instead.
# Packages the image lacks come from .whl/ (`make gpu-wheels` where PyPI is reachable), installed into a
# private folder (--target), never into the machine's own environment.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/samcache-site}
RESULTS_DIR=${RESULTS_DIR:-benchmarks/out/gpu/results}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "Error: make bench-gpu needs a CUDA GPU and a python3 with PyTorch (set PYTHON=...)" >&2
    exit 1
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
NEEDED="segment_anything sam2 hydra omegaconf iopath zarr numcodecs dask.array distributed cityscapesscripts pydantic
        filelock psutil skimage scipy h5py click yaml tqdm matplotlib"
imports() { "$PY" -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]" $NEEDED; }
if ! imports 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "Error: missing Python packages; run 'make gpu-wheels' where PyPI is reachable and carry .whl/ here" >&2
        exit 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" .whl/*.whl
    imports
fi
exec "$PY" -m benchmarks.bench_gpu --results "$RESULTS_DIR" --append "$@"
