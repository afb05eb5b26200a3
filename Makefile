# Quick start: `make demo` runs the main job, `make test` runs the tests.
# Both set up what they need first (virtual env, PyTorch, the package, the dataset).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fvlab-installed
OUT    ?= out/demo

.PHONY: setup data web browser postgres test demo lint format bench-deps clean-venv

setup: $(STAMP) data web

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

data:
	@bash scripts/ensure-data.sh

# The study's browser experiment: jsPsych from npm (npm ci when node_modules is missing/stale).
web:
	@bash scripts/ensure-web.sh

# Headless Chromium + chromedriver (Debian packages) for the study's end-to-end browser test.
browser:
	@bash scripts/ensure-chromium.sh

# PostgreSQL's server programs (Debian package) for the study's tests on a real PostgreSQL.
postgres:
	@bash scripts/ensure-postgres.sh

# TEST_WORKERS pytest-xdist workers (default: one per core; tests/conftest.py keeps a module
# on one worker and shares the cores' threads among the workers).
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

test: setup browser postgres
	$(PY) -m pytest -q -n $(TEST_WORKERS)

demo: setup
	$(VENV)/bin/fvlab demo --out $(OUT)

# Benchmark-only dependencies: lucent 0.1.8 pins kornia <= 0.4.1 and drags in test tools, so it is
# installed without its dependency list (which could also swap the venv's torch build).
bench-deps: setup
	$(PY) -m pip install --quiet --no-deps torch-lucent==0.1.8 kornia==0.4.1
	$(PY) -m pip install --quiet tqdm ipython decorator

lint: setup
	$(VENV)/bin/ruff check fvlab tests benchmarks
	$(VENV)/bin/ruff format --check fvlab tests benchmarks

format: setup
	$(VENV)/bin/ruff format fvlab tests benchmarks
	$(VENV)/bin/ruff check --fix fvlab tests benchmarks

clean-venv:
	rm -rf $(VENV)
