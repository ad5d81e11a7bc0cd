# Every target makes its own virtual environment and installs what it needs from PyPI.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
SOURCES := $(shell find otel_launch -name '*.py' -o -path '*/ui/static/*' -type f) pyproject.toml

.PHONY: install test test-list test-quick test-unit test-process test-e2e demo bench docs lint clean

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

# nox and uv, in a venv of their own: `make test` and `make lint` run nox's sessions (noxfile.py),
# each in an environment under .nox/ that uv makes.
NOX_VENV := .venv-nox
NOX := $(NOX_VENV)/bin/nox
NOX_TOOLS := nox==2026.10.20 uv==0.13.8

$(NOX_VENV)/.installed: Makefile
	$(PYTHON) -m venv $(NOX_VENV)
	$(NOX_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(NOX_TOOLS)
	touch $@

# ruff (check and format), mypy and import-linter: nox's lint session.
lint: $(NOX_VENV)/.installed
	$(NOX) -s lint

# CI: lint, the supported-versions matrix (one session per cell), the documentation site, then a
# table of every interpreter, OpenTelemetry set, Django and Celery with pass counts.
# CELLS="py310-oldest py310-floors" runs some cells only (and the table); `make test-list` lists them.
test: $(NOX_VENV)/.installed
	$(NOX) $(if $(CELLS),-s $(foreach cell,$(CELLS),"tests($(cell))") summary) $(NOX_ARGS)

test-list: $(NOX_VENV)/.installed
	$(NOX) --list

# A developer's quick run: lint and the whole suite once, in .venv (the newest OpenTelemetry set).
test-quick: install lint
	$(PY) -m pytest -q -n 2

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
	rm -rf $(VENV) .venv-*/ .nox build *.egg-info site
