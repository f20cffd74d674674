"""Backends import only from ``ome_arrow_core`` and ``ome_arrow_core.plugin_api``, and only public names."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ome_arrow_core
from ome_arrow_core import plugin_api

BACKENDS = Path(__file__).resolve().parents[1] / "backends"
DOORS = {"ome_arrow_core": set(ome_arrow_core.__all__), "ome_arrow_core.plugin_api": set(plugin_api.__all__)}


def _backend_files() -> list[Path]:
    return sorted(p for p in BACKENDS.glob("*/ome_arrow_*/**/*.py"))


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


#: Parsed at collection: late in a full run CPython 3.11.7 once raised "AST constructor recursion depth mismatch"
#: from ast.parse on an intact file (an interpreter bug, not the file).
_TREES = {path: _parse(path) for path in _backend_files()}


def _core_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for every import of ome_arrow_core in ``path``; name None for ``import x``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(_TREES.get(path) or _parse(path)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ome_arrow_core":
            found.extend((node.lineno, node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] == "ome_arrow_core")
    return found


def test_backends_exist() -> None:
    assert len(_backend_files()) >= 20


@pytest.mark.parametrize("path", _backend_files(), ids=lambda p: str(p.relative_to(BACKENDS)))
def test_backend_imports_only_the_doors(path: Path) -> None:
    bad = []
    for line, module, name in _core_imports(path):
        if module not in DOORS:
            bad.append(f"{path.name}:{line}: imports module {module}")
        elif name is not None and name not in DOORS[module]:
            bad.append(f"{path.name}:{line}: {name} is not in {module}.__all__")
    assert not bad, (
        "backends must import only public names of ome_arrow_core or ome_arrow_core.plugin_api:\n" + "\n".join(bad)
    )


def test_every_door_name_resolves() -> None:
    for name in plugin_api.__all__:
        assert getattr(plugin_api, name) is not None, name


def test_plugin_api_loads_no_dataset_or_framework() -> None:
    code = (
        "import sys, ome_arrow_core.plugin_api\n"
        "heavy = ['torch', 'jax', 'cupy', 'tifffile', 'vortex', 'ome_arrow_core.dataset', 'pyarrow.parquet']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_the_door_offers_every_error_class() -> None:
    """plugin_api promises every error class: each exception class of ome_arrow_core.errors is behind it."""
    import inspect

    from ome_arrow_core import errors, plugin_api

    classes = {n for n, c in vars(errors).items() if inspect.isclass(c) and issubclass(c, errors.OMEArrowError)}
    assert classes - set(plugin_api.__all__) == set()
    assert all(getattr(plugin_api, n) is getattr(errors, n) for n in classes)
