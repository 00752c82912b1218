# tflm-kit: `make demo` converts the bundled default model, `make test` runs the default tests.
# Both create .venv and install the kit on first use (and again when pyproject.toml changes): `make demo`
# the core only (convert, validate, golden, firmware, flash), `make test` (and test-fast/slow/all, bench)
# the extras the suites exercise. The test set is a superset of the core: installing it marks the core
# done too, so `make demo` after `make test` installs nothing (README: what each extra costs on disk).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE_INSTALLED := $(VENV)/.installed-core
TEST_INSTALLED := $(VENV)/.installed-test
TEST_EXTRAS := test,optimize,federated,npu,torch
INSTALLED := $(TEST_INSTALLED)
# Real models and data used by the MLPerf Tiny recipes, the slow tests and the benchmark.
export TFLM_KIT_SHARED_DATA ?= $(abspath ../shared/data)
# A prebuilt TFLM (headers + libraries for host, Cortex-M4, Cortex-M7) for the firmware tests, when
# there is one beside the project and you have not named your own; without it they skip and say why.
ifeq ($(origin TFLM_ROOT),undefined)
ifneq ($(wildcard ../shared/tflm/tensorflow/lite/micro/micro_interpreter.h),)
export TFLM_ROOT := $(abspath ../shared/tflm)
endif
endif
# CMSIS-NN sources for the AOT runtime's CMSIS-NN back-end (host checks, Cortex-M builds); users clone
# ARM-software/CMSIS-NN and set CMSIS_NN_ROOT. Without it the AOT code is checked on its portable kernels.
ifeq ($(origin CMSIS_NN_ROOT),undefined)
ifneq ($(wildcard ../shared/sdk/cmsis-nn/Include/arm_nnfunctions.h),)
export CMSIS_NN_ROOT := $(abspath ../shared/sdk/cmsis-nn)
endif
endif

.PHONY: demo lint test test-fast test-slow test-all bench clean

# $(call install,EXTRAS,STAMPS): the venv (Python 3.11), the kit with EXTRAS, then every stamp it satisfies.
define install
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: tflm-kit needs Python 3.11 (TensorFlow 2.21 + TF-MOT) — fix: run make with PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.$(1)'
	@touch $(2)
endef

$(CORE_INSTALLED): pyproject.toml
	$(call install,,$(CORE_INSTALLED))

$(TEST_INSTALLED): pyproject.toml
	$(call install,[$(TEST_EXTRAS)],$(TEST_INSTALLED) $(CORE_INSTALLED))

# The digit CNN trained, quantized and compressed (int4 filters, models/recipes/demo.yaml); it prints the
# compressed model's deployed flash and arena next to the uncompressed int8 model's.
demo: $(CORE_INSTALLED)
	$(BIN)/tflm-kit convert models/recipes/demo.yaml --out build/digits --force

# The lint and type gate (pyproject.toml: [tool.ruff], [tool.mypy]): pyflakes, bugbear, unused arguments,
# complexity <= 12 on the whole tree, and mypy on converter/. Seconds; runs first in test-fast and test.
# ruff's binary beside its package (a venv that borrows another's site-packages has only a `python -m ruff`
# wrapper in bin/, and ruff's own finder would run that wrapper again); RUFF=<path> names another.
RUFF ?= $(shell $(BIN)/python -c 'import pathlib, ruff; print(pathlib.Path(ruff.__file__).resolve().parents[4] / "bin" / "ruff")')
lint: $(INSTALLED)
	$(RUFF) check converter tests bench tools
	$(BIN)/python -m mypy

# Two workers, one test file each at a time (--dist loadfile keeps a file's module fixtures in one worker):
# most tests wait on one compiler, QEMU or TensorFlow process, so two cores run about two at once.
# TEST_JOBS=0 runs them in this process.
TEST_JOBS ?= 2
test: lint
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

# Pure logic (recipe schema, stage order, records, report, manifest shape, progress, C literals) and the
# layer rule: no TensorFlow is imported (each test checks), a few seconds.
test-fast: lint
	$(BIN)/python -m pytest tests/unit tests/test_architecture.py -q

test-slow: $(INSTALLED)
	$(BIN)/python -m pytest -m slow

test-all: $(INSTALLED)
	$(BIN)/python -m pytest -m ''

# The kit against the MLPerf Tiny reference models: one `tflm-kit optimize` search per model (and the demo)
# -> bench/optimize_runs/<model>.json -> bench/results.md, results.csv, results.png (docs/bench.md);
# the time to validate 1,000 KWS inputs: bench/validate_kws.md; TFLM vs AOT firmware per model: bench/aot.md. Long: the searches build and run
# firmware under QEMU when TFLM_ROOT, arm-none-eabi-gcc and qemu-system-arm are there.
bench: $(INSTALLED)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.validate_kws
	$(BIN)/python -m bench.aot
	$(BIN)/python -m bench.boards

clean:
	rm -rf build .pytest_cache tflm_kit.egg-info
