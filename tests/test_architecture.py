"""The layers stay layers: no import cycle between files or between folders of engine/ and kernels/, and no
module reaches into another package's private names. Read from the source (ast), so it holds for every
import, lazy ones inside functions included (docs/architecture.md)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "kernels")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _imported(name: str, path: Path, node: ast.AST, modules: dict) -> list[str]:
    """The project modules an import statement names (a package's `from . import x` names x if it is one)."""
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        if node.level:
            package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
    out = []
    for t in targets:
        while t and t not in modules and "." in t:
            t = t.rsplit(".", 1)[0]
        if t in modules and t != name:
            out.append(t)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps.update(_imported(name, path, node, modules))
        graph[name] = deps
    return graph


# `python -m engine` is the command line's entry point, so it belongs to the commands room, whatever its folder.
ENTRY_POINTS = {"engine.__main__": "engine/commands"}


def folder_of(module: str, graph_paths: dict[str, Path]) -> str:
    return ENTRY_POINTS.get(module) or str(graph_paths[module].parent.relative_to(REPO))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    paths = _modules()
    out: dict[str, set[str]] = {}
    for a, deps in graph.items():
        fa = folder_of(a, paths)
        out.setdefault(fa, set())
        for b in deps:
            fb = folder_of(b, paths)
            if fb != fa:
                out[fa].add(fb)
    return out


def test_no_import_cycle_between_files():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_folders():
    cycle = find_cycle(folder_graph(import_graph()))
    assert cycle is None, "folder cycle: " + " -> ".join(cycle)


def test_the_checks_find_a_cycle():
    """The finder itself works (a test must be able to fail)."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "engine.scheduler" in graph["engine.loop"]  # edges are read, lazy imports included
    assert "engine.api" in graph["engine.doctor"]


def test_kernels_import_nothing_of_the_engine():
    for name, deps in import_graph().items():
        if name.startswith("kernels"):
            assert not {d for d in deps if d.startswith("engine")}, name


def test_the_core_imports_no_room_above_it():
    """engine/*.py (the core) may import engine/numerics (below it) and kernels, never server, batch, ray, bench
    or commands: those are built on the core's public seam (Engine.submit)."""
    paths = _modules()
    for name, deps in import_graph().items():
        if name.startswith("engine") and folder_of(name, paths) == "engine":
            above = {d for d in deps if d.startswith("engine.") and folder_of(d, paths) not in ("engine",
                                                                                               "engine/numerics")}
            assert not above, f"{name} imports {sorted(above)}"


def test_no_private_name_is_imported_from_another_package():
    """`from engine.model import _x` or `import kernels._cache` from outside the package that owns it."""
    paths = _modules()
    bad = []
    for name, path in paths.items():
        here = folder_of(name, paths)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                owner = node.module
                if owner in paths and folder_of(owner, paths) != here:
                    bad += [f"{name}: {owner}.{a.name}" for a in node.names if a.name.startswith("_")
                            and not a.name.startswith("__")]
                if any(p.startswith("_") and not p.startswith("__") for p in owner.split(".")[1:]) \
                        and owner in paths and folder_of(owner, paths) != here:
                    bad.append(f"{name}: {owner}")
    assert not bad, bad


# Private attributes read off something other than self/cls, by design: our own tags on third-party objects
# (named _sampling_engine...), and numba's cache internals that kernels/_cache.py replaces (its one job).
ALLOWED_PRIVATE = {"kernels/_cache.py"}


def test_no_private_attribute_is_read_across_objects():
    """`engine._submit`, `loop._thread`, `model._system_info`: a module outside a package reaching into it.
    Only `self._x`/`cls._x` (an object's own state) and the allowances above."""
    bad = []
    for name, path in _modules().items():
        rel = str(path.relative_to(REPO))
        if rel in ALLOWED_PRIVATE:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                if node.attr.startswith("_sampling_engine"):
                    continue
                bad.append(f"{rel}:{node.lineno}: {ast.unparse(node)}")
    assert not bad, bad
