"""The package's folders are its layers: imports only point down, and never in a circle.

Every module's imports are read with `ast` (those under `if TYPE_CHECKING:` and
inside functions too: a type-only import is still a dependency). The rule, from
the bottom up (docs/design.md, "Layers"):

    core        imports only core (and no Tornado)
    config      core
    storage     core, config
    cluster     core, config
    ops         core, config
    transport   core, config
    http        core, config, storage, ops, transport
    top         anything of the server (app.py, cli.py, __main__.py, testing.py)
    client      core (the protocol's constants): the Python client is no part of the
                server, and no server module imports it

The package's own `__init__.py` holds only the version: any layer may read it.
Only cluster/ may use the optional `redis` package; the client, besides Tornado,
no third-party package at all.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "imserver"

ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "config": frozenset({"core"}),
    "storage": frozenset({"core", "config"}),
    "cluster": frozenset({"core", "config"}),
    "ops": frozenset({"core", "config"}),
    "transport": frozenset({"core", "config"}),
    "http": frozenset({"core", "config", "storage", "ops", "transport"}),
    "top": frozenset({"core", "config", "storage", "cluster", "ops", "transport", "http", "top"}),
    "client": frozenset({"core"}),
}
# Third-party packages a layer must not use: the core is plain Python, and `redis` is an
# optional dependency (the `cluster` extra) that only cluster/ imports.
FORBIDDEN_OUTSIDE: dict[str, tuple[str, ...]] = {
    "core": ("tornado", "prometheus_client", "jwt", "yaml", "redis"),
    **{layer: ("redis",) for layer in ("config", "storage", "ops", "transport", "http", "top")},
}
# A layer listed here may use only these third-party packages (and the standard library).
ONLY_THIRD_PARTY: dict[str, tuple[str, ...]] = {"client": ("tornado",)}
TOP = ("imserver.app", "imserver.cli", "imserver.__main__", "imserver.testing")


def module_names(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def layer_of(module: str) -> str | None:
    """The layer of an imserver module; None for the package root (the version only)."""
    parts = module.split(".")
    if module == "imserver":
        return None
    if parts[1] in ("core", "storage", "cluster", "ops", "transport", "http", "client"):
        return parts[1]
    if module == "imserver.config":
        return "config"
    if module in TOP:
        return "top"
    raise AssertionError(f"{module} is in no layer: put it in a layer's folder, or add it to the rule")


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) for every import of `module`: imserver modules and
    the top-level names of third-party ones."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in known else base))
    return found


def check(root: Path = PACKAGE) -> tuple[list[str], dict[str, set[str]]]:
    """The broken rules (one line each), and the graph of imports between modules."""
    modules = module_names(root)
    known = set(modules)
    problems: list[str] = []
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        layer = layer_of(name)
        where = path.relative_to(root.parent)
        for line, imported in imports_of(name, path, known):
            top = imported.split(".")[0]
            if top != "imserver":
                if layer is not None and top in FORBIDDEN_OUTSIDE.get(layer, ()):
                    problems.append(
                        f"{where}:{line} imports {imported}: the {layer} layer must not use {top}")
                elif layer in ONLY_THIRD_PARTY and top not in sys.stdlib_module_names \
                        and top not in ONLY_THIRD_PARTY[layer]:
                    problems.append(f"{where}:{line} imports {imported}: the {layer} layer uses no "
                                    f"third-party package but {', '.join(ONLY_THIRD_PARTY[layer])}")
                continue
            graph[name].add(imported)
            target = layer_of(imported)
            if layer is None and imported != "imserver":
                problems.append(f"{where}:{line} imports {imported}: the package root imports nothing")
            elif target is not None and layer is not None and target not in ALLOWED[layer] \
                    and target != layer:
                problems.append(f"{where}:{line} imports {imported}: {layer} may import only "
                                f"{', '.join(sorted(ALLOWED[layer]))}, not {target}")
    return problems, graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_imports_point_down_the_layers() -> None:
    problems, _ = check()
    assert not problems, "imports against the layer rule:\n" + "\n".join(problems)


def test_no_import_cycle() -> None:
    _, graph = check()
    # Importing a submodule runs its package's __init__: that is not a dependency.
    for name, deps in graph.items():
        deps.discard(name.rpartition(".")[0])
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_module_is_in_a_layer() -> None:
    for name in module_names():
        layer_of(name)  # raises for a module outside the layers


def test_the_check_catches_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "imserver"
    for folder in ("core", "http"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "core" / "hub.py").write_text("from ..http import web\nimport tornado.web\n")
    (root / "http" / "web.py").write_text("from ..core.hub import Hub\n")
    problems, graph = check(root)
    assert problems == [
        "imserver/core/hub.py:1 imports imserver.http.web: core may import only core, not http",
        "imserver/core/hub.py:2 imports tornado.web: the core layer must not use tornado",
    ]
    assert find_cycle(graph) == ["imserver.core.hub", "imserver.http.web", "imserver.core.hub"]


def test_the_client_is_apart_from_the_server(tmp_path: Path) -> None:
    root = tmp_path / "imserver"
    for folder in ("core", "http", "client"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "core" / "protocol.py").write_text("")
    (root / "http" / "chat.py").write_text("from ..client import connection\n")
    (root / "client" / "connection.py").write_text(
        "import json\nimport tornado.websocket\nimport requests\n"
        "from ..core import protocol\nfrom ..http import chat\n")
    problems, _ = check(root)
    assert problems == [
        "imserver/client/connection.py:3 imports requests: the client layer uses no "
        "third-party package but tornado",
        "imserver/client/connection.py:5 imports imserver.http.chat: client may import only core, "
        "not http",
        "imserver/http/chat.py:1 imports imserver.client.connection: http may import only config, "
        "core, ops, storage, transport, not client",
    ]
