# Every target creates .venv first if it is missing (pinned versions from constraints.txt).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo serve lint test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/dvc repro
	$(VENV)/bin/matchwijs serve --data data/synthetic --model out/model --demo-accounts --prepare-only

# The meeting app on http://127.0.0.1:8000/ (after `make demo`; log in with a demo account it printed).
serve: $(STAMP)
	$(VENV)/bin/matchwijs serve --data data/synthetic --model out/model

# Lint, format and types first (seconds), then the test suite.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pipelines.bench
	$(PY) -m pipelines.bench_app
	$(PY) -m pipelines.bench_ope
	$(PY) -m pipelines.bench_family
	nice -n 10 $(PY) -m pipelines.bench_gate --seeds 20 --workers 2
	$(PY) -m pipelines.bench_scale --scales 1,5,20 --cases regions,meeting --max-minutes 90

clean:
	rm -rf data out mlruns bench .pytest_cache
