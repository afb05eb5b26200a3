# Quick start: `make demo` runs the main job, `make test` runs the tests.
# Both set up what they need first (virtual env, PyTorch, the package, the dataset).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fvlab-installed
OUT    ?= out/demo

.PHONY: setup data test demo lint format clean-venv

setup: $(STAMP) data

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

data:
	@bash scripts/ensure-data.sh

test: setup
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/fvlab demo --out $(OUT)

lint: setup
	$(VENV)/bin/ruff check fvlab tests benchmarks
	$(VENV)/bin/ruff format --check fvlab tests benchmarks

format: setup
	$(VENV)/bin/ruff format fvlab tests benchmarks
	$(VENV)/bin/ruff check --fix fvlab tests benchmarks

clean-venv:
	rm -rf $(VENV)
