# The two commands a newcomer needs: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow bench bench-gpu bench-gpu-smoke gpu-wheels venv clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1 setuptools wheel
	# sam2 is an sdist whose build wants torch: build it against the torch above, without its CUDA extension.
	SAM2_BUILD_CUDA=0 $(PY) -m pip install -q --no-build-isolation sam2==1.1.0
	# sam3 (pure Python) pins numpy<2.4 and typing_extensions<4.16 (pydantic 2.14 needs >=4.16): install it without
	# its declared requirements; its real ones (timm, ftfy, regex, einops, pycocotools, huggingface-hub, and
	# open_clip_torch, which ships the BPE vocabulary sam3 lacks) are in setup.cfg.
	$(PY) -m pip install -q --no-deps sam3==0.1.4
	$(PY) -m pip install -q -e '.[dev]'
	@echo "note: pip's 'ERROR: ... dependency resolver' lines about sam3's pins (numpy, tqdm, typing_extensions, huggingface-hub) are expected: sam3 runs with the newer versions samcache installs (README, SAM 3); the install succeeded."
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/samcache demo --config configs/demo.yaml

# Two pytest workers (pytest-xdist), one thread each: the 2 cores the suite is sized for, kept busy.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist worksteal -m "not slow" tests

# The robustness checks that need real kills, full disks, a SLURM cluster or a Dask cluster on S3 (about 20 minutes on 2 cores).
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow tests

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

# On a GPU machine you keep, with its own python3 and PyTorch: the full GPU table (benchmarks/bench_gpu.sh).
# On a lent one: bash benchmarks/gpu_first_run.sh RESULTS_DIR (README, "On a GPU").
bench-gpu:
	bash benchmarks/bench_gpu.sh

# bench_gpu at toy size with the tiny model, on a CPU: checks that every row of the GPU script runs.
bench-gpu-smoke: $(STAMP)
	$(PY) -m benchmarks.bench_gpu --smoke

# cp312 manylinux x86-64 wheels of what the GPU machine's image lacks, into .whl/ (about 20 MB; carry it
# there). Needs only python3 with pip and PyPI: no project venv, no torch (sam2 builds pure Python
# without it). Checked after download: every Requires-Dist met by the wheels plus the image.
WHEEL_TARGET := --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
	--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
	--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any
WHEEL_VENV := .venv-wheels
gpu-wheels:
	python3 -m pip download -q --no-deps --only-binary=:all: $(WHEEL_TARGET) -d .whl -r benchmarks/gpu-requirements.txt
	test -x $(WHEEL_VENV)/bin/python || python3 -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q setuptools wheel packaging
	SAM2_BUILD_CUDA=0 $(WHEEL_VENV)/bin/python -m pip wheel -q --no-deps --no-build-isolation -w .whl \
		-r benchmarks/gpu-build-from-source.txt
	$(WHEEL_VENV)/bin/python -m benchmarks.gpu_wheels --wheels .whl

clean:
	rm -rf runs/demo
