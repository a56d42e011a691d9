# imserver: `make run` starts the server, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck test-js test-py system-deps bench screenshots clean mutation

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
	$(VENV)/bin/ruff check --config .ci/ruff.toml imserver tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test-js:
	node --test tests/js/

test-py: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck test-js test-py

bench: $(STAMP)
	$(PY) -m bench all

# Refresh docs/images/ (the README's pictures) from the browser tests.
screenshots: $(STAMP) system-deps
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider -k screenshot_of_the_chat tests/test_chat_browser.py
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider -k operator_watches tests/test_dashboard_browser.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache

# Mutation testing of the chat core (minutes, not part of `make test`): seeded
# faults per core module, each run against the tests that cover its line.
mutation: $(STAMP)
	$(PY) -m tests.mutation.run
