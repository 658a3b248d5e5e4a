# Every target does its own set-up: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.attnx-installed
# The CPU build of torch: a plain `pip install torch` may pull a multi-GB CUDA build.
TORCH_CPU ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint typecheck clean zoo-report bench bench-224 bench-int8-cpu train-digits gpu-check gpu-check-dry

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_CPU)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

## The main job on the embedded default (CPU, ONNX Runtime): a zoo model through the whole pipeline.
demo: install
	$(VENV)/bin/attnx run cbam_resnet -o demo_out --weights weights/digits/cbam_resnet.safetensors

## The test suite (slow tests included; GPU tests skip with their reason).
test: install
	$(PY) -m pytest -n 2 -q -rs $(PYTEST_ARGS)

## Only the fast tests.
test-fast: install
	$(PY) -m pytest -n 2 -q -m "not slow" $(PYTEST_ARGS)

## Style, and the layers of ARCHITECTURE.md (import-linter contracts in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

## Type-check the TensorRT plugin code (no TensorRT libraries needed: stubs in plugins/typings).
typecheck: install
	$(VENV)/bin/mypy --disallow-untyped-defs attnx/plugins
	$(VENV)/bin/mypy --disallow-untyped-defs --follow-imports=silent attnx/deploy/backends/tensorrt

clean:
	rm -rf demo_out .pytest_cache

## Time the zoo: PyTorch eager vs ORT and OpenVINO bundles side by side (1 thread, batch 1 and 8); JSON, Markdown, PNG in bench/.
BENCH_MODELS ?= all
BENCH_PRECISIONS ?= fp32,int8,bf16
BENCH_BACKENDS ?= ort,openvino
bench: install
	$(PY) -m attnx.deploy.tools.zoo_bench --models $(BENCH_MODELS) --batches 1,8 --backend $(BENCH_BACKENDS) --precisions $(BENCH_PRECISIONS) --iterations 200 --threads 1 --out bench

## The 224² targets (ResNet-50-layout zoo classifiers, batch 1): ORT int8 vs fp32 speed (1 thread), and the
## bundle `--precision best` picks against every CPU engine run directly on the same ONNX (2 threads).
bench-224: install
	$(PY) -m attnx.deploy.tools.int8_bench --models resnets --config resnet50 --size 224 --runs 40 --count 64 --eval-count 32 --json bench/int8_speed_224.json
	$(PY) -m attnx.deploy.tools.selection_report --models resnets --config resnet50 --threads 2 --iterations 60 --json bench/cpu_selection.json --markdown bench/cpu_selection.md
	$(PY) -m attnx.deploy.tools.nncf_bench --models se_resnet,cbam_resnet,vit_tiny --configs resnet50,resnet50,vit_s16 --size 224 --threads 2 --runs 30 --json bench/openvino_int8_nncf.json

## INT8 recipes by CPU target, side by side on this CPU (digits-trained tiny models; see `attnx cpu`).
bench-int8-cpu: install
	$(PY) -m attnx.deploy.tools.int8_bench --models se_resnet,cbam_resnet,eca_resnet,vit_tiny,mobilevitv2 --runs 60 --weights weights/digits --cpu-targets vnni --json bench/int8_cpu_targets.json

## Train the zoo's classifiers on scikit-learn's digits (weights/digits/, a few minutes per model on one core).
train-digits: install
	$(PY) -m attnx.deploy.tools.train_digits --out weights/digits

## Export the whole zoo and check parity; the Markdown table in the README comes from here.
zoo-report: install
	$(PY) -m attnx.deploy.tools.zoo_report --json out/zoo_report.json

## One-shot GPU check (NVIDIA GPU, torch with CUDA, triton, cuda-python; no TensorRT needed, nothing installed):
## plugin kernels vs the NumPy reference and torch, timed against the bandwidth bound; cuda-python buffers and
## the TensorRT runtime's copies. Writes gpu_check.json and gpu_check.md into GPU_CHECK_OUT. Under 5 minutes.
## No `install` prerequisite: the GPU machines cannot reach a package index; it runs with what is there.
GPU_CHECK_OUT ?= bench/gpu_check
# The GPU machine's own Python (torch with CUDA), not the CPU-only venv.
GPU_PY ?= $(PYTHON)
gpu-check:
	env -u TRITON_INTERPRET $(GPU_PY) -m attnx.deploy.tools.gpu_check --out $(GPU_CHECK_OUT)

## The same script on the CPU, as CI runs it (tests/deploy/tools/test_gpu_check.py): interpreter, tiny sizes, numerics.
gpu-check-dry: install
	$(PY) -m attnx.deploy.tools.gpu_check --dry --out out/gpu_check_dry
