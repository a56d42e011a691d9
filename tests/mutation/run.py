"""Mutation testing of the chat core: how much of its behaviour do the tests pin?

    python -m tests.mutation.run [--per-module 45] [--seed 1] [--jobs 2] [--modules hub,room]

1. Coverage, measured once (and again only when a file under imserver/ or
   tests/ changes): the whole suite runs under coverage.py with one context per
   test, server child processes included (a sitecustomize starts coverage in
   each, named after the test that started it). This gives, for every line
   of the core, the tests that run it, with each test's duration.
2. Mutants: every small fault the AST allows in each core module (an operator,
   a comparison's boundary, a constant, a negated condition, a deleted
   statement, ...), sampled per module with a fixed seed.
3. Each mutant is written into a copy of the tree, and the tests that cover its
   line run against it there (fastest first, stopping at the first failure),
   with PYTHONPATH on the copy, so that servers started as child processes run
   the mutant too. A mutant is caught when a test fails or the run times out.
4. The score per module leaves out the mutants listed in equivalent.yaml (next
   to this file): those that cannot change behaviour, each with the reason.
   They are not run (--check-equivalent runs them, to see that none is caught).
   Survivors not listed there are printed: each is behaviour no test pins, or
   an equivalent mutant to add to the list.

Not part of `make test`: it takes minutes.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import contextlib
import copy
import hashlib
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# The core modules, by the short name the scores and equivalent.yaml use, and where
# each is under imserver/ ("frames" is the inbound frame parser).
CORE_PATHS = {"protocol": "core/protocol.py", "hub": "core/hub.py", "room": "core/room.py",
              "store": "storage/sqlite.py", "heartbeat": "ops/heartbeat.py",
              "ratelimit": "core/ratelimit.py", "frames": "transport/parser.py", "config": "config.py",
              "feed": "core/feed.py"}
CORE = tuple(CORE_PATHS)


def source_of(tree: Path, module: str) -> Path:
    """The file of a core module in a tree (the checkout, or a worker's copy)."""
    return tree / "imserver" / CORE_PATHS[module]
EQUIVALENT_FILE = HERE / "equivalent.yaml"
WORK = ROOT / ".mutation"
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".mutation", "__pycache__", "data", "*.db*",
                                     ".mypy_cache", ".ruff_cache", ".pytest_cache", "node_modules",
                                     "*.egg-info", "build")

SITECUSTOMIZE = """\
import os
if os.environ.get("COVERAGE_PROCESS_START"):
    import coverage
    coverage.process_startup()
"""


# --- mutants ---

@dataclass(frozen=True)
class Mutant:
    module: str
    lineno: int
    line: str  # the original line, stripped: with `mutation`, the mutant's stable name
    mutation: str
    start: tuple[int, int]  # (line, column) of the replaced source, columns in characters
    end: tuple[int, int]
    replacement: str
    occurrence: int = 1

    @property
    def key(self) -> tuple[str, str, str]:
        mutation = self.mutation if self.occurrence == 1 else f"{self.mutation} #{self.occurrence}"
        return (f"{self.module}.py", self.line, mutation)

    def apply(self, source: str) -> str:
        lines = source.splitlines(keepends=True)
        (l1, c1), (l2, c2) = self.start, self.end
        head = "".join(lines[:l1 - 1]) + lines[l1 - 1][:c1]
        tail = lines[l2 - 1][c2:] + "".join(lines[l2:])
        return head + self.replacement + tail


BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
              ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr,
              ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
              ast.Pow: ast.Mult, ast.BitXor: ast.BitAnd}
CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
            ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
            ast.Is: ast.IsNot, ast.IsNot: ast.Is}
AUG_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
            ast.Mult: ast.Div}
CALL_SWAP = {"min": "max", "max": "min", "any": "all", "all": "any"}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
          ast.Mod: "%", ast.BitAnd: "&", ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>",
          ast.Pow: "**", ast.BitXor: "^", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
          ast.Eq: "==", ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is",
          ast.IsNot: "is not", ast.And: "and", ast.Or: "or"}


def _is_log_call(node: ast.AST) -> bool:
    if isinstance(node, ast.Expr):
        node = node.value
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    owner = node.func.value
    return isinstance(owner, ast.Name) and owner.id in ("log", "logging", "logger")


def _is_stub_body(node: ast.stmt) -> bool:
    """`...` as a body: a Protocol's method, which never runs."""
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and node.value.value is Ellipsis)


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


class _Collector(ast.NodeVisitor):
    """Every mutant of one module, in source order."""

    def __init__(self, module: str, source: str) -> None:
        self.module = module
        self.lines = source.splitlines()
        self.mutants: list[Mutant] = []

    def _col(self, lineno: int, byte_col: int) -> int:
        return len(self.lines[lineno - 1].encode("utf-8")[:byte_col].decode("utf-8"))

    def add(self, node: ast.AST, mutation: str, replacement: str) -> None:
        lineno = node.lineno  # type: ignore[attr-defined]
        if "pragma: no cover" in self.lines[lineno - 1]:
            return
        start = (lineno, self._col(lineno, node.col_offset))  # type: ignore[attr-defined]
        end_line = node.end_lineno  # type: ignore[attr-defined]
        end = (end_line, self._col(end_line, node.end_col_offset))  # type: ignore[attr-defined]
        self.mutants.append(Mutant(self.module, lineno, self.lines[lineno - 1].strip(), mutation,
                                   start, end, replacement))

    def replace_expr(self, node: ast.expr, new: ast.expr, mutation: str) -> None:
        self.add(node, mutation, "(" + ast.unparse(new) + ")")

    # Parts that hold no behaviour to mutate.
    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in ("__repr__",):
            return
        for stmt in node.body:
            self.visit(stmt)
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for stmt in node.body:
            self.visit(stmt)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_Assign(self, node: ast.Assign) -> None:
        value = node.value
        if node.col_offset == 0 and isinstance(value, ast.BinOp) and isinstance(value.op, ast.BitOr):
            return  # a type alias (A | B)
        self.generic_visit(node)

    def visit_Assert(self, node: ast.Assert) -> None:
        return

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return

    def visit_Import(self, node: ast.Import) -> None:
        return

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        return

    def visit_Try(self, node: ast.Try) -> None:
        for part in (node.body, node.orelse, node.finalbody):
            self._body(part)
        for handler in node.handlers:
            self._body(handler.body)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def _body(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.visit(stmt)

    def generic_visit(self, node: ast.AST) -> None:
        for field_name, value in ast.iter_fields(node):
            if field_name in ("body", "orelse", "finalbody") and isinstance(value, list):
                self._statements(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def _statements(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self.visit(stmt)

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            self._statement(node)
        super().visit(node)

    def _statement(self, node: ast.stmt) -> None:
        if _is_docstring(node) or _is_log_call(node) or _is_stub_body(node):
            return
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id in ("__slots__", "__all__") for t in node.targets):
            return
        if isinstance(node, (ast.Expr, ast.Assign, ast.AugAssign, ast.Raise, ast.Delete)):
            if isinstance(node, ast.Assign) and node.col_offset == 0:
                return  # a module constant: its value is mutated instead
            self.add(node, "delete the statement", "pass")
        elif isinstance(node, ast.Return) and node.value is not None and not (
                isinstance(node.value, ast.Constant) and node.value.value is None):
            self.add(node, "return None", "return None")
        elif isinstance(node, ast.Continue):
            self.add(node, "continue -> break", "break")
        elif isinstance(node, ast.Break):
            self.add(node, "break -> continue", "continue")
        if isinstance(node, (ast.If, ast.While)):
            self.replace_expr(node.test, ast.UnaryOp(ast.Not(), node.test), "negate the condition")
        if isinstance(node, ast.AugAssign) and type(node.op) in AUG_SWAP:
            new_op = AUG_SWAP[type(node.op)]
            target = ast.unparse(node.target)
            self.add(node, f"{SYMBOL[type(node.op)]}= -> {SYMBOL[new_op]}=",
                     f"{target} {SYMBOL[new_op]}= {ast.unparse(node.value)}")

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _is_log_call(node):
            return
        if isinstance(node.func, ast.Name) and node.func.id in CALL_SWAP:
            new = copy.deepcopy(node)
            assert isinstance(new.func, ast.Name)
            new.func.id = CALL_SWAP[node.func.id]
            self.replace_expr(node, new, f"{node.func.id}() -> {new.func.id}()")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        strings = any((isinstance(side, (ast.JoinedStr, ast.Constant)) and isinstance(
            getattr(side, "value", None), (str, bytes))) or isinstance(side, ast.JoinedStr)
            for side in (node.left, node.right))
        if type(node.op) in BINOP_SWAP and not strings:
            new_op = BINOP_SWAP[type(node.op)]
            self.replace_expr(node, ast.BinOp(node.left, new_op(), node.right),
                              f"{SYMBOL[type(node.op)]} -> {SYMBOL[new_op]}")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            if type(op) in CMP_SWAP:
                ops = list(node.ops)
                new_op = CMP_SWAP[type(op)]
                ops[i] = new_op()
                self.replace_expr(node, ast.Compare(node.left, ops, node.comparators),
                                  f"{SYMBOL[type(op)]} -> {SYMBOL[new_op]}")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        new_op = ast.Or if isinstance(node.op, ast.And) else ast.And
        self.replace_expr(node, ast.BoolOp(new_op(), node.values),
                          f"{SYMBOL[type(node.op)]} -> {SYMBOL[new_op]}")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self.replace_expr(node, node.operand, "delete `not`")
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.replace_expr(node.test, ast.UnaryOp(ast.Not(), node.test), "negate the condition")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self.replace_expr(node, ast.Constant(not value), f"{value} -> {not value}")
        elif isinstance(value, (int, float)):
            self.replace_expr(node, ast.Constant(value + 1), f"{value!r} -> {value + 1!r}")


def mutants_of(module: str, source: str) -> list[Mutant]:
    collector = _Collector(module, source)
    collector.visit(ast.parse(source))
    seen: Counter[tuple[str, str, str]] = Counter()
    numbered = []
    for mutant in collector.mutants:
        base = (mutant.module, mutant.line, mutant.mutation)
        seen[base] += 1
        numbered.append(Mutant(**{**mutant.__dict__, "occurrence": seen[base]}))
    return numbered


def sample(module: str, source: str, count: int, seed: int) -> list[Mutant]:
    every = mutants_of(module, source)
    rng = random.Random(f"{seed}:{module}")
    chosen = rng.sample(every, min(count, len(every)))
    return sorted(chosen, key=lambda m: (m.lineno, m.start, m.mutation))


# --- coverage: which tests run which line ---

def _fingerprint() -> str:
    digest = hashlib.sha256()
    tests = [p for p in (ROOT / "tests").rglob("*.py") if HERE not in p.parents]
    for path in sorted(list((ROOT / "imserver").rglob("*.py")) + tests):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def measure_coverage(pytest_args: list[str]) -> dict[str, object]:
    """Run the suite once under coverage; returns {lines: {module: {line: [tests]}}, tests: {...}}."""
    cache = WORK / "coverage.json"
    fingerprint = _fingerprint()
    if cache.exists():
        data = json.loads(cache.read_text())
        if data.get("fingerprint") == fingerprint:
            print(f"coverage: from {cache.relative_to(ROOT)} (nothing changed since it was measured)")
            return data  # type: ignore[no-any-return]
    import coverage  # measured only here: no dependency of the server

    run = WORK / "coverage-run"
    shutil.rmtree(run, ignore_errors=True)
    (run / "site").mkdir(parents=True)
    (run / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    rcfile = run / "coveragerc"
    rcfile.write_text(
        "[run]\n"
        f"data_file = {run / 'data' / '.coverage'}\n"
        "parallel = true\n"
        "sigterm = true\n"
        "context = ${MUTATION_TEST}\n"
        "include =\n" + "".join(f"    {source_of(ROOT, name)}\n" for name in CORE))
    (run / "data").mkdir()
    report = run / "tests.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(run / "site"), str(ROOT)]),
           "COVERAGE_PROCESS_START": str(rcfile), "MUTATION_TEST": "",
           "MUTATION_REPORT": str(report)}
    started = time.monotonic()
    print("coverage: running the whole suite once, one context per test ...", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.mutation.plugin",
         *pytest_args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (run / "pytest.log").write_text(result.stdout)
    tail = "\n".join(result.stdout.splitlines()[-3:])
    print(f"coverage: suite done in {time.monotonic() - started:.0f} s: {tail}", flush=True)
    if result.returncode != 0:
        print(f"coverage: tests that failed are not used (output in {run / 'pytest.log'})", flush=True)
    combined = coverage.Coverage(data_file=str(run / ".coverage"))
    combined.combine([str(run / "data")], keep=False)
    combined.save()
    cov_data = combined.get_data()
    tests = json.loads(report.read_text())
    lines: dict[str, dict[str, list[str]]] = {}
    for name in CORE:
        path = str(source_of(ROOT, name))
        by_line = cov_data.contexts_by_lineno(path)
        lines[name] = {}
        for lineno, contexts in by_line.items():
            ids = {part for ctx in contexts for part in ctx.split("|") if part in tests}
            if "" in contexts:  # run at import: by every test that imports the module
                ids.add("*")
            if ids:
                lines[name][str(lineno)] = sorted(ids)
    data = {"fingerprint": fingerprint, "lines": lines, "tests": tests}
    cache.write_text(json.dumps(data))
    return data


# --- running mutants ---

@dataclass
class Outcome:
    mutant: Mutant
    status: str  # caught, timeout, survived, uncovered, equivalent (listed, not run)
    tests: int
    seconds: float
    killer: str = ""


class Worker:
    """A copy of the tree in which one mutant at a time is applied and tested, with a
    fork server (forkserver.py) that starts each pytest run without re-importing
    pytest, Hypothesis and Tornado."""

    def __init__(self, index: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"imserver-mutation-{index}-"))
        shutil.copytree(ROOT, self.dir / "tree", ignore=COPY_IGNORE)
        self.tree = self.dir / "tree"
        self.log = self.dir / "pytest.log"
        env = {**os.environ, "PYTHONPATH": str(self.tree), "MUTATION_TEST": ""}
        env.pop("COVERAGE_PROCESS_START", None)
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.mutation.forkserver"], cwd=self.tree, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _drop_bytecode(self, module: str) -> None:
        source = source_of(self.tree, module)
        for pyc in (source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"):
            pyc.unlink(missing_ok=True)

    def _answer(self, timeout: float | None) -> dict[str, int] | None:
        """The fork server's next answer, or None when `timeout` passes first."""
        assert self.server.stdout is not None
        ready, _, _ = select.select([self.server.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server in {self.tree} ended")
        return json.loads(line)  # type: ignore[no-any-return]

    def _pytest(self, args: list[str], timeout: float) -> tuple[int | None, str]:
        """Run pytest in a forked child: its exit code (None on a timeout) and output."""
        assert self.server.stdin is not None
        self.server.stdin.write(json.dumps({"args": args, "log": str(self.log)}) + "\n")
        self.server.stdin.flush()
        started = self._answer(None)
        assert started is not None
        finished = self._answer(timeout)
        if finished is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started["pid"], signal.SIGKILL)
            self._answer(None)
            return None, ""
        return finished["exit"], self.log.read_text(errors="replace")

    def run(self, mutant: Mutant, tests: list[str], timeout: float, per_test: float) -> Outcome:
        path = source_of(self.tree, mutant.module)
        original = path.read_text(encoding="utf-8")
        started = time.monotonic()
        try:
            path.write_text(mutant.apply(original), encoding="utf-8")
            self._drop_bytecode(mutant.module)
            code, out = self._pytest(
                ["-q", "-x", "-p", "no:cacheprovider", "-p", "tests.mutation.plugin", "--no-header",
                 "-o", "addopts=", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                 "--timeout", str(int(per_test)), "--timeout-method", "thread",
                 "--basetemp", str(self.dir / "tmp"), *tests], timeout)
            seconds = time.monotonic() - started
            if code is None:
                return Outcome(mutant, "timeout", len(tests), seconds)
            if code == 0:
                return Outcome(mutant, "survived", len(tests), seconds)
            if "+ Timeout +" in out:  # pytest-timeout ended a test that hung, and the process
                return Outcome(mutant, "timeout", len(tests), seconds)
            if code == 5 or "ERROR: not found:" in out or "usage:" in out:
                raise RuntimeError(f"pytest could not run the tests (exit {code}):\n{out[-2000:]}")
            # Any other failure is the mutant's: a test failed (1), or the tree no longer
            # imports (4, a conftest that cannot load), or pytest itself broke on it (3).
            killer = next((line.split(" ", 1)[1] for line in out.splitlines()
                           if line.startswith(("FAILED tests/", "ERROR tests/"))),
                          f"exit {code}: {out.strip().splitlines()[-1:]}")
            return Outcome(mutant, "caught", len(tests), seconds, killer[:160])
        finally:
            path.write_text(original, encoding="utf-8")
            self._drop_bytecode(mutant.module)

    def remove(self) -> None:
        if self.server.stdin is not None:
            self.server.stdin.close()
        self.server.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def runnable(nodeid: str) -> str:
    """A node id pytest accepts on its command line: a parametrized test whose id holds
    escaped bytes cannot be named that way, so all of its cases run instead."""
    if "\\" in nodeid and "[" in nodeid:
        return nodeid[:nodeid.index("[")]
    return nodeid


def select_tests(covering: set[str], duration: Callable[[str], float], budget: float,
                 slow: float) -> list[str]:
    """The tests to run against one mutant, fastest first.

    A line run at import is covered by every test of the module, and a few
    end-to-end tests (a browser, the Autobahn suite, a wheel built in a fresh
    venv) take seconds each: running them all against every survivor made the
    run several times longer than its budget. So the slow tests run only for a
    line no fast test covers, and the tests run for one mutant stop at `budget`
    seconds of their usual duration (the fastest always runs).
    """
    ordered = sorted(covering, key=lambda t: (duration(t), t))
    fast = [t for t in ordered if duration(t) <= slow]
    chosen: list[str] = []
    spent = 0.0
    for test in fast or ordered:
        if chosen and spent + duration(test) > budget:
            break
        chosen.append(test)
        spent += duration(test)
    return chosen


def load_equivalent() -> dict[tuple[str, str, str], str]:
    entries = yaml.safe_load(EQUIVALENT_FILE.read_text(encoding="utf-8")) or []
    return {(e["module"], e["line"], e["mutation"]): e["reason"] for e in entries}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-module", type=int, default=45)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--modules", default=",".join(CORE))
    parser.add_argument("--list", action="store_true", help="only list the sampled mutants")
    parser.add_argument("--only", default="",
                        help="run only the sampled mutants on these lines: module:line,...")
    parser.add_argument("--check-equivalent", action="store_true",
                        help="run the mutants listed in equivalent.yaml too (to see none is caught)")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds of the covering tests' usual duration run per mutant")
    parser.add_argument("--slow", type=float, default=3.0,
                        help="a test slower than this runs only for lines no faster test covers")
    parser.add_argument("--report", type=Path, default=WORK / "report.json")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for the coverage run")
    args = parser.parse_args(argv)
    modules = [m for m in args.modules.split(",") if m]
    started = time.monotonic()
    WORK.mkdir(exist_ok=True)

    chosen: list[Mutant] = []
    for module in modules:
        source = source_of(ROOT, module).read_text(encoding="utf-8")
        chosen += sample(module, source, args.per_module, args.seed)
    if args.only:
        lines_wanted = {tuple(item.split(":")) for item in args.only.split(",")}
        chosen = [m for m in chosen if (m.module, str(m.lineno)) in lines_wanted]
    if args.list:
        for m in chosen:
            print(f"{m.module}.py:{m.lineno}: {m.mutation}: {m.line}  =>  {m.replacement}")
        return 0

    data = measure_coverage(args.pytest_args)
    lines: dict[str, dict[str, list[str]]] = data["lines"]  # type: ignore[assignment]
    tests: dict[str, dict[str, object]] = data["tests"]  # type: ignore[assignment]
    passing = {t for t, info in tests.items() if info["outcome"] == "passed"}

    def duration(test: str) -> float:
        if test in tests:
            return float(tests[test]["duration"])  # type: ignore[arg-type]
        return sum(float(info["duration"]) for t, info in tests.items()  # type: ignore[arg-type]
                   if t.startswith(test + "["))

    module_tests = {name: {t for ids in by_line.values() for t in ids if t != "*"}
                    for name, by_line in lines.items()}
    equivalent = load_equivalent()
    outcomes: list[Outcome] = []
    todo: list[tuple[Mutant, list[str]]] = []
    for mutant in chosen:
        if mutant.key in equivalent and not args.check_equivalent:
            outcomes.append(Outcome(mutant, "equivalent", 0, 0.0))  # no test can catch it
            continue
        covering: set[str] = set()
        for lineno in range(mutant.start[0], mutant.end[0] + 1):
            covering.update(lines.get(mutant.module, {}).get(str(lineno), ()))
        if "*" in covering:
            covering = module_tests[mutant.module]
        covering &= passing
        if not covering:
            outcomes.append(Outcome(mutant, "uncovered", 0, 0.0))
        else:
            chosen_tests = select_tests(covering, duration, args.budget, args.slow)
            todo.append((mutant, list(dict.fromkeys(runnable(t) for t in chosen_tests))))
    # Longest first, so that the pool does not end on one long mutant.
    todo.sort(key=lambda item: -sum(duration(t) for t in item[1]))

    workers: list[Worker] = []
    free: list[Worker] = []
    lock = threading.Lock()
    done_count = [0]

    def run_one(item: tuple[Mutant, list[str]]) -> Outcome:
        mutant, covering = item
        with lock:
            if not free:
                worker = Worker(len(workers))
                workers.append(worker)
            else:
                worker = free.pop()
        try:
            # A test that hangs is stopped after a few times its usual duration (and at least
            # 30 s); the whole run after 60 s plus three times the tests' usual total.
            timeout = 60 + 3 * sum(duration(t) for t in covering)
            per_test = 30 + 5 * max(duration(t) for t in covering)
            outcome = worker.run(mutant, covering, timeout, per_test)
        finally:
            with lock:
                free.append(worker)
                done_count[0] += 1
        mark = {"caught": ".", "timeout": "T", "survived": "S"}[outcome.status]
        print(mark, end="" if done_count[0] % 60 else "\n", flush=True)
        return outcome

    print(f"mutants: {len(chosen)}, {len(todo)} to run ({len(chosen) - len(todo)} listed as equivalent"
          f" or covered by no test), {args.jobs} at a time", flush=True)
    try:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            outcomes += list(pool.map(run_one, todo))
    finally:
        for worker in workers:
            worker.remove()
    print()
    return report(outcomes, modules, equivalent, args.report, time.monotonic() - started)


def report(outcomes: list[Outcome], modules: list[str], equivalent: dict[tuple[str, str, str], str],
           path: Path, seconds: float) -> int:
    by_module: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        by_module[outcome.mutant.module].append(outcome)
    print(f"\n{'module':<12}{'mutants':>8}{'equiv.':>8}{'caught':>8}{'survived':>10}{'score':>8}")
    total_caught = total_counted = 0
    survivors: list[Outcome] = []
    used_equivalents = set()
    for module in modules:
        results = by_module[module]
        equiv = [o for o in results if o.mutant.key in equivalent]
        used_equivalents.update(o.mutant.key for o in equiv)
        counted = [o for o in results if o.mutant.key not in equivalent]
        caught = [o for o in counted if o.status in ("caught", "timeout")]
        survivors += [o for o in counted if o.status not in ("caught", "timeout")]
        total_caught += len(caught)
        total_counted += len(counted)
        score = 100.0 * len(caught) / len(counted) if counted else 100.0
        print(f"{module:<12}{len(results):>8}{len(equiv):>8}{len(caught):>8}"
              f"{len(counted) - len(caught):>10}{score:>7.1f}%")
    score = 100.0 * total_caught / total_counted if total_counted else 100.0
    print(f"{'all':<12}{len(outcomes):>8}{len(outcomes) - total_counted:>8}{total_caught:>8}"
          f"{total_counted - total_caught:>10}{score:>7.1f}%")
    caught_equivalents = [o for o in outcomes
                          if o.mutant.key in equivalent and o.status in ("caught", "timeout")]
    if survivors:
        print("\nSurvivors (behaviour no test pins, or an equivalent mutant for equivalent.yaml):")
        for o in sorted(survivors, key=lambda o: (o.mutant.module, o.mutant.lineno)):
            m = o.mutant
            print(f"  {m.module}.py:{m.lineno} [{o.status}, {o.tests} tests] {m.key[2]}\n"
                  f"      {m.line}\n      => {m.replacement}")
    if caught_equivalents:
        print("\nListed as equivalent but caught (remove them from equivalent.yaml):")
        for o in caught_equivalents:
            print(f"  {o.mutant.key} by {o.killer}")
    print(f"\n{len(outcomes)} mutants in {seconds / 60:.1f} minutes")
    path.write_text(json.dumps([{
        "module": o.mutant.module, "lineno": o.mutant.lineno, "line": o.mutant.line,
        "mutation": o.mutant.key[2], "replacement": o.mutant.replacement, "status": o.status,
        "equivalent": o.mutant.key in equivalent, "tests": o.tests,
        "seconds": round(o.seconds, 2), "killer": o.killer} for o in outcomes], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
