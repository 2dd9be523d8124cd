# Entry points, all from a machine that has only python3:
#   make demo   -> sets up .venv and runs the main job on built-in data
#   make test   -> sets up .venv and runs the test suite
#   make bench  -> sets up .venv and runs every benchmark at a quick size (BENCH_ARGS=--full for full sizes);
#                  outputs in $(BENCH_OUT)/
# TORCH_SPEC picks the torch build installed first (CPU here; e.g. TORCH_SPEC="torch==2.13.0"
# TORCH_INDEX=https://download.pytorch.org/whl/cu128 for a CUDA build).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_OUT ?= petspect_demo
PYTEST_ARGS ?=
BENCH_OUT ?= bench_out
BENCH_ARGS ?=
BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

setup: $(VENV)/.petspect-installed

$(VENV)/.petspect-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

demo: setup
	$(BIN)/petspect demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/run_all.py --out $(BENCH_OUT) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(BENCH_OUT) .pytest_cache
