# Every target makes its own virtual environment and installs what it needs from PyPI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SOURCES := $(shell find otel_launch -name '*.py' -o -path '*/ui/static/*' -type f) pyproject.toml

.PHONY: install test test-quick test-matrix-list test-unit test-process test-e2e demo bench docs lint clean

# A real (not editable) install: tests and benchmarks run what users get, bootstrap included.
$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet ".[test,demo,ui,catalogue,config]"
	touch $@

# build/ first: setuptools keeps what it copied there, so a module deleted or moved would stay in the wheel.
$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	rm -rf build
	$(PIP) install --quiet --no-deps --force-reinstall .
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check otel_launch tests examples bench .ci scripts
	$(PY) -m ruff format --check otel_launch tests examples bench .ci scripts
	$(VENV)/bin/lint-imports --no-cache

# CI: the supported-versions matrix (.ci/matrix.py; each cell in its own .venv-<cell>, lint in the
# first), then a table of every interpreter, OpenTelemetry set, Django and Celery with pass counts.
# CELLS=py310-oldest runs some cells only; `make test-matrix-list` shows them.
test:
	$(PYTHON) .ci/matrix.py $(CELLS)

test-matrix-list:
	$(PYTHON) .ci/matrix.py --list

# A developer's quick run: lint and the whole suite once, in .venv (the newest OpenTelemetry set).
test-quick: install lint
	$(PY) -m pytest -q

test-unit: install
	$(PY) -m pytest -q tests/unit

test-process: install
	$(PY) -m pytest -q -m process

# The example shop on real gunicorn, uvicorn, runserver, Celery workers and brokers.
test-e2e: install
	$(PY) -m pytest -q -m e2e

# The shop under otel-launch, its traces in `otel-launch ui` until Ctrl-C (DEMO_FLAGS=--non-interactive: no wait).
demo: install
	$(PY) examples/run_demo.py $(DEMO_FLAGS)

# Not part of `make test` (about 8 minutes; needs wrk): writes bench/results.json, bench/results.md
# and the table in docs/cost.md.
bench: install
	$(PIP) install --quiet ".[bench]"
	$(PY) bench/run.py

# The documentation site from docs/ into site/, strictly (a broken link or anchor fails). The
# settings reference is generated while it builds (scripts/settings_reference.py, an MkDocs hook);
# `python -m` from here puts the working tree's otel_launch first, whose settings it documents.
$(VENV)/.docs: $(VENV)/.deps
	$(PIP) install --quiet ".[docs]"
	touch $@

docs: install $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

clean:
	rm -rf $(VENV) .venv-*/ build *.egg-info site
