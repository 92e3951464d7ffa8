#!/usr/bin/env bash
# The first thing to run on a lent GPU machine:   bash benchmarks/gpu_first_run.sh RESULTS_DIR
#
# With the device tool (carry [".whl"], made here by `make gpu-wheels`; timeout_s 600):
#     bash benchmarks/gpu_first_run.sh "$OUT"
# Everything comes back in RESULTS_DIR, 6 files (the tool returns at most 8):
#     env.txt          GPU, driver, Python, torch, CUDA, cuDNN, packages; wheel install; carried-wheel check
#     test_cuda.txt    pytest tests/test_cuda.py -rA
#     bench_gpu.jsonl  bench_gpu --quick, one JSON object per metric, rewritten after every row
#     bench_gpu.md     the same as a table
#     bench_gpu.log    its output, tracebacks of failed rows included
#     summary.txt      each part's seconds and exit status
# Parts, with estimated wall time on one H100 (PyTorch 2.11, 16 cores); limits are enforced so the whole
# script ends within about TOTAL_S (440 s; at worst ~470 s with the kill grace: under 8 minutes, and the
# tool's 10-minute command limit):
#     1. install .whl/*.whl into a private folder (pip --no-index --no-deps --target)     ~15 s
#     2. record the environment, check carried wheels against what imports               ~10 s
#     3. tests/test_cuda.py (ViT-H on the GPU, fresh-process budget, 10 GiB cap ...)     ~120 s (limit 190 s)
#     4. bench_gpu --quick --deadline (what is left), most important rows first         ~250 s (limit: the rest)
#        (rows, estimated: setup 30, correctness 25, extract 40, zero-shot 20, clicks 25, head 35,
#        everything 45, the four capped stages 60, ceiling 10, compile 150, sam2.1 25, seed's way 15:
#        what does not fit the deadline is marked skipped; rerun those with: bench_gpu --quick --only compile
#        --only sam2; everything needs the extract row: --only extract --only everything)
# The machine's start (1-2 min) is not included. A part that fails is recorded and the next one runs.
set -uo pipefail
RESULTS=${1:?usage: gpu_first_run.sh RESULTS_DIR}
TOTAL_S=${TOTAL_S:-440}
TEST_S=${TEST_S:-190}
cd "$(dirname "$0")/.."
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
SITE=${SITE:-/tmp/samcache-site}
WORK=${WORK:-/tmp/samcache-bench}
START=$(date +%s)
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
elapsed() { echo $(( $(date +%s) - START )); }
part() {  # part NAME STATUS SECONDS
    echo "$1: exit $2, $3 s (at $(elapsed) s)" | tee -a "$RESULTS/summary.txt"
}
: > "$RESULTS/summary.txt"

t=$(date +%s)
status=1
{
    echo "## install carried wheels into $SITE"
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
        status=$?
        echo "pip exit $status; $(ls .whl/*.whl | wc -l) wheels"
    else
        echo "no .whl/: run 'make gpu-wheels' where PyPI is reachable and carry .whl (imports below will say what lacks)"
    fi
} > "$RESULTS/env.txt" 2>&1
part install $status $(( $(date +%s) - t ))

t=$(date +%s)
{
    echo "## date"; date -u
    echo "## nvidia-smi"; nvidia-smi 2>&1 || echo "nvidia-smi failed"
    echo "## python, torch, CUDA"
    "$PY" - <<'EOF'
import platform, sys
import torch
print("python", sys.version.replace("\n", " "), sys.executable)
print("platform", platform.platform(), "cpus", __import__("os").cpu_count())
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print("gpu", torch.cuda.get_device_name(0), f"{props.total_memory / 2**30:.1f} GiB", "sm", props.major, props.minor,
          "multiprocessors", props.multi_processor_count, "bf16", torch.cuda.is_bf16_supported())
    print("memory fraction api", hasattr(torch.cuda, "get_per_process_memory_fraction"))
else:
    print("CUDA NOT AVAILABLE")
EOF
    echo "## imports"
    "$PY" -c "
import importlib
for m in ['samcache', 'segment_anything', 'sam2', 'hydra', 'omegaconf', 'iopath', 'zarr', 'numcodecs', 'dask.array',
          'distributed', 'cityscapesscripts.helpers.labels', 'pydantic', 'filelock', 'psutil', 'skimage', 'scipy',
          'h5py', 'click', 'yaml', 'tqdm', 'matplotlib', 'PIL', 'pytest']:
    try:
        mod = importlib.import_module(m)
        print('ok', m, getattr(mod, '__version__', ''), getattr(mod, '__file__', ''))
    except Exception as exc:
        print('FAILED', m, type(exc).__name__, exc)
"
    echo "## carried wheels: every Requires-Dist against the versions that import here"
    "$PY" -m benchmarks.gpu_wheels --installed
    status=$?
    echo "## packages"
    "$PY" -m pip list --format=freeze 2>/dev/null
} >> "$RESULTS/env.txt" 2>&1
part "environment (wheel check)" $status $(( $(date +%s) - t ))

t=$(date +%s)
# SIGINT first: pytest then still prints its summary of what ran
timeout -s INT -k 15 "$TEST_S" "$PY" -m pytest -p no:cacheprovider -v -rA --durations=15 tests/test_cuda.py \
    > "$RESULTS/test_cuda.txt" 2>&1
status=$?
[ $status -eq 124 ] && echo "test_cuda.py stopped at its ${TEST_S} s limit" >> "$RESULTS/test_cuda.txt"
part test_cuda $status $(( $(date +%s) - t ))

t=$(date +%s)
left=$(( TOTAL_S - $(elapsed) - 15 ))
if [ $left -gt 30 ]; then
    timeout -s INT -k 10 $(( left + 10 )) "$PY" -m benchmarks.bench_gpu --quick --results "$RESULTS" --deadline "$left" \
        --work "$WORK" > "$RESULTS/bench_gpu.log" 2>&1
    status=$?
else
    echo "no time left for bench_gpu" > "$RESULTS/bench_gpu.log"; status=1
fi
part "bench_gpu --quick (deadline $left s)" $status $(( $(date +%s) - t ))

echo "total: $(elapsed) s" | tee -a "$RESULTS/summary.txt"
tail -n 5 "$RESULTS/test_cuda.txt"
cat "$RESULTS/bench_gpu.md" 2>/dev/null
