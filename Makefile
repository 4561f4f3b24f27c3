# Set-up, demo, tests and docs. Every target but test-oldest and clean creates .venv and
# installs the package with its extras first (only when pyproject.toml changed since the
# last install).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Without an NVIDIA GPU, install a CPU build of torch first (a CUDA build is several
# GB). Override either, e.g. `make test TORCH="torch>=2.6"`. On Linux, PyPI's torch wheel
# is the CUDA build; TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu takes torch
# from PyTorch's CPU-only index instead (left empty, pip uses its configured sources).
TORCH_CPU ?= torch==2.13.0
TORCH_GPU ?= torch>=2.6
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),$(TORCH_GPU),$(TORCH_CPU))
TORCH_INDEX_URL ?=
EXTRAS ?= dev,plot,docs,parquet,onnx
PYTEST_WORKERS ?= 2

# The oldest release of every dependency range, on the oldest Python, in an environment
# made afresh each time: `make test-oldest` checks the lower bounds of pyproject.toml.
OLDEST_PYTHON ?= python3.10
OLDEST_VENV ?= .venv-oldest

.PHONY: install demo test test-oldest lint format docs bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	$(BIN)/python -m sklearn_resnet demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test-oldest:
	rm -rf $(OLDEST_VENV)
	$(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet packaging "tomli; python_version < '3.11'"
	$(OLDEST_VENV)/bin/python .ci/oldest_requirements.py --pin plot --as-declared dev \
		> $(OLDEST_VENV)/requirements.txt
	$(OLDEST_VENV)/bin/python -m pip install --quiet "$$(grep '^torch==' $(OLDEST_VENV)/requirements.txt)" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(OLDEST_VENV)/bin/python -m pip install --quiet -r $(OLDEST_VENV)/requirements.txt
	$(OLDEST_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(OLDEST_VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check sklearn_resnet tests examples benchmarks .ci
	$(BIN)/ruff format --check sklearn_resnet tests examples benchmarks .ci

format: $(STAMP)
	$(BIN)/ruff format sklearn_resnet tests examples benchmarks .ci
	$(BIN)/ruff check --fix sklearn_resnet tests examples benchmarks .ci

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(OLDEST_VENV) build dist *.egg-info .pytest_cache .ruff_cache site
