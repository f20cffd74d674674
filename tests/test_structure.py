"""The core's structure: no import cycle, packages entered only through their ``__init__``, no private name
imported across modules. Read from the source (ast), so a new import breaks the test, not a user."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "ome_arrow_core"
#: Sub-packages whose ``__init__`` is their one door (``builtins`` holds plugin modules, loaded by name).
DOORS = ("typed_chunk", "dataset", "record", "safe_write", "remote")


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(ROOT.rglob("*.py"))}
#: Parsed at collection (see tests/test_plugin_door.py: CPython 3.11.7's ast.parse once failed late in a full run).
TREES = {p: ast.parse(p.read_text(encoding="utf-8")) for p in MODULES.values()}


def _imports(path: Path) -> list[tuple[str, str, int]]:
    """(module imported from, name, line) of every import of ``path`` that runs (TYPE_CHECKING blocks left out);
    ``name`` is "" for ``import x``."""
    tree = TREES.get(path) or ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    package = _module(path) if path.name == "__init__.py" else _module(path).rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            out += [(source, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names]
    return out


def _edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for source, name, _ in _imports(path):
            target = f"{source}.{name}" if f"{source}.{name}" in MODULES else source
            if target in MODULES and target != mod:
                graph[mod].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_core() -> None:
    """Imports inside functions count too: a cycle deferred to call time is still a cycle."""
    assert _cycles(_edges()) == []


@pytest.mark.parametrize("door", DOORS)
def test_a_package_is_entered_only_through_its_door(door: str) -> None:
    package = f"ome_arrow_core.{door}"
    wrong = [
        f"{mod}:{line} imports {source}"
        for mod, path in MODULES.items()
        if not (mod == package or mod.startswith(package + "."))
        for source, name, line in _imports(path)
        if source.startswith(package + ".") or (source == package and f"{package}.{name}" in MODULES)
    ]
    assert wrong == []


def test_every_door_lists_its_public_names() -> None:
    for door in DOORS:
        tree = ast.parse((ROOT / door / "__init__.py").read_text(encoding="utf-8"))
        listed = next(
            ast.literal_eval(n.value)
            for n in tree.body
            if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
        )
        imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert set(listed) <= imported, f"{door}: __all__ names what it does not import"
        assert all(not name.startswith("_") for name in listed)


def test_no_private_name_is_imported_across_modules() -> None:
    wrong = [
        f"{mod}:{line} imports {name} from {source}"
        for mod, path in MODULES.items()
        for source, name, line in _imports(path)
        if name.startswith("_") and not name.startswith("__") and source.startswith("ome_arrow_core")
    ]  # dunders are public
    assert wrong == []
