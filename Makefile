# imserver: `make run` starts the server, `make test` runs every check.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# `make run` installs only what the server needs (and uvloop, orjson); tests add the rest
# (asyncpg, for storage.backend postgres, among them: the `cluster` extra).
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck test-js js-deps test-py system-deps services autobahn-env bench screenshots clean mutation

run: $(RUN_STAMP)
	$(PY) -m imserver --config config.yaml

$(RUN_STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools<82" wheel
	$(PY) -m pip install --quiet -e ".[fast]"
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Debian's chromium and prometheus for the browser and Prometheus tests.
system-deps:
	@bash .ci/system-deps

# PostgreSQL and Redis on 127.0.0.1 for the cluster tests, installed and started when not answering.
services:
	@bash .ci/services

# Autobahn|Testsuite (Python 2.7) for tests/test_autobahn.py, installed once outside the repo.
autobahn-env:
	@bash .ci/autobahn-env >/dev/null

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check --config .ci/ruff.toml imserver tests bench

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy

# React, Vue, jsdom and TypeScript for the client's tests (package.json), into node_modules/.
js-deps:
	@bash .ci/js-deps

test-js: js-deps
	node --test tests/js/

test-py: $(TEST_STAMP) system-deps services autobahn-env
	$(PY) -m pytest -q -p no:cacheprovider

test: lint typecheck test-js test-py

bench: $(TEST_STAMP)
	$(PY) -m bench all

# Refresh docs/images/ (the README's pictures) from the browser tests.
screenshots: $(TEST_STAMP) system-deps
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider -k screenshot_of_the_chat tests/test_chat_browser.py
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider -k operator_watches tests/test_dashboard_browser.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache node_modules

# Mutation testing of the chat core (minutes, not part of `make test`): seeded
# faults per core module, each run against the tests that cover its line.
mutation: $(TEST_STAMP)
	$(PY) -m tests.mutation.run
