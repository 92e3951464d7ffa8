#!/usr/bin/env bash
# `make bench-gpu`: runs under the GPU machine's own python3 and PyTorch (2.11 there), not the pinned venv.
# Packages its image lacks come from .whl/ (made by `make gpu-wheels` on a machine with PyPI, then carried).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "make bench-gpu needs a CUDA GPU and a python3 with PyTorch (set PYTHON=...)" >&2
    exit 1
fi
NEEDED="segment_anything zarr numcodecs dask distributed cityscapesscripts pydantic filelock psutil skimage scipy h5py click yaml tqdm matplotlib"
if ! "$PY" -c "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]" $NEEDED 2>/dev/null; then
    if [ ! -d .whl ]; then
        echo "missing Python packages; run 'make gpu-wheels' where PyPI is reachable and carry .whl/ here" >&2
        exit 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --find-links .whl \
        -r benchmarks/gpu-requirements.txt -r benchmarks/gpu-build-from-source.txt
fi
export SAM2_BUILD_CUDA=0 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m benchmarks.bench_gpu "$@"
