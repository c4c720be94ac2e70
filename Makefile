# Two commands do the whole set-up: `make test` and `make demo`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dreamgym-installed

.PHONY: test demo lint format bench

$(PY):
	python3 -m venv $(VENV)

# torch first: its CPU build is on local disk; a plain `torch` requirement would pull CUDA.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/dreamgym demo

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(STAMP)
	$(PY) -m experiments.bench.suite --json runs/bench.json
