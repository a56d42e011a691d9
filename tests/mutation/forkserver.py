"""A pytest fork server for the mutation run: one per worker tree.

Importing pytest, Hypothesis and Tornado takes longer than most of the tests
a mutant is run against. This process imports them once, before any of
imserver (which a mutant changes), and then forks a child per request: the
child runs pytest on the worker's tree, so it imports the mutated imserver
afresh. Server child processes that tests start are ordinary new processes.

Requests on stdin, one JSON line each: {"args": [...], "log": path}.
Answers on stdout, one JSON line each: {"pid": n} when the child started
(the caller may kill its process group on a timeout), then {"exit": code}.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import warnings

import pytest

# Third-party modules only: nothing that imports imserver.
# pytest then warns that it cannot rewrite the asserts of the plugins among them, which
# the children are told to ignore (-W): no test of imserver's is in these modules.
PRELOAD = ("hypothesis", "hypothesis.strategies", "jwt", "pkg_resources", "prometheus_client",
           "pytest_timeout", "pytest_tornado.plugin", "tornado.httpclient", "tornado.testing",
           "tornado.web", "tornado.websocket", "yaml")


def _child(args: list[str], log: str) -> None:
    os.setsid()  # its own process group, so that a timeout kills its servers too
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdin.close()
    try:
        code = int(pytest.main(args))
    except BaseException:  # whatever happens, the child ends here
        traceback.print_exc()
        code = 99
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    with warnings.catch_warnings():  # pytest's own filters apply in the children
        warnings.simplefilter("ignore")
        for name in PRELOAD:
            importlib.import_module(name)
    answers = sys.stdout
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request["args"], request["log"])
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        answers.write(json.dumps({"exit": code}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
