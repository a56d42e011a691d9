# imserver: `make run` starts the server, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck test-js test-py system-deps bench clean

run: $(STAMP)
	$(PY) -m imserver --config config.yaml

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools<82" wheel
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Debian's chromium and prometheus for the browser and Prometheus tests.
system-deps:
	@bash .ci/system-deps

lint: $(STAMP)
	$(VENV)/bin/ruff check imserver tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test-js:
	node --test tests/js/

test-py: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck test-js test-py

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
