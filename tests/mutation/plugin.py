"""A pytest plugin for the runs of `make mutation`.

It names the coverage context after the running test (its node id), in this
process and, through the MUTATION_TEST environment variable, in every server
child process the test starts; and it writes each test's outcome and duration
to the JSON file named by MUTATION_REPORT.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

_results: dict[str, dict[str, Any]] = {}


def pytest_configure(config: pytest.Config) -> None:
    # Under coverage and a busy machine, data generation is slower than Hypothesis
    # expects: that is no failure of the code under test (nor a caught mutant).
    from hypothesis import HealthCheck, settings

    settings.register_profile("mutation", suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("mutation")


def _coverage() -> Any:
    try:
        import coverage
    except ImportError:  # pragma: no cover - the plugin is only loaded by the mutation run
        return None
    return coverage.Coverage.current()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    cov = _coverage()
    os.environ["MUTATION_TEST"] = item.nodeid
    if cov is not None:
        cov.switch_context(item.nodeid)
    yield
    os.environ["MUTATION_TEST"] = ""
    if cov is not None:
        cov.switch_context("")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0})
    entry["duration"] += report.duration
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("MUTATION_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(_results, out)
