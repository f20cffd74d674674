"""The registry's PluginManager finds exactly the hook implementations pluggy's own finds, in every plugin shape:
modules (with imported names, unmarked functions, a ``specname`` alias, marked static and class methods in a
class), module subclasses, class and instance plugins, and every installed plugin module; and exactly the hook
specifications pluggy finds, in our specification module and in specification modules and classes of other shapes."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Sequence
from typing import Any

import pluggy
import pytest

from ome_arrow_core import Reader, hookimpl
from ome_arrow_core import hookspecs as specs
from ome_arrow_core.entry_points import entry_points
from ome_arrow_core.plugin_manager import PluginManager
from ome_arrow_core.registry import BUILTINS, ENTRY_POINT_GROUP


def _readers() -> Sequence[Reader]:
    return [Reader(name="made-up", suffixes=(".madeup",))]


def _module(cls: type[types.ModuleType] = types.ModuleType) -> types.ModuleType:
    m = cls("made_up_plugin")
    m.ome_arrow_readers = hookimpl(_readers)  # type: ignore[attr-defined]
    m.unmarked = lambda: None  # type: ignore[attr-defined]
    m.imported_name = Sequence  # type: ignore[attr-defined]
    m.a_module = sys  # type: ignore[attr-defined]
    m.aliased = hookimpl(specname="ome_arrow_writers")(lambda: [])  # type: ignore[attr-defined]
    m.ome_arrow_exporters = hookimpl(tryfirst=True)(lambda: [])  # type: ignore[attr-defined]
    return m


class _SubModule(types.ModuleType):
    """A module of its own type: pluggy's lookup, not the fast one."""


class _ClassPlugin:
    @staticmethod
    @hookimpl
    def ome_arrow_readers() -> Sequence[Reader]:
        return _readers()

    @classmethod
    @hookimpl
    def ome_arrow_writers(cls) -> list[Any]:
        return []

    def ome_arrow_exporters(self) -> list[Any]:  # unmarked: not a hook implementation
        return []


def _found(manager: type[pluggy.PluginManager], plugin: object) -> list[tuple[str, Any, dict[str, Any]]]:
    pm = manager(specs.PROJECT)
    pm.add_hookspecs(specs)
    pm.register(plugin, name="p")
    out = []
    for name in ("ome_arrow_ingesters", "ome_arrow_readers", "ome_arrow_writers", "ome_arrow_exporters"):
        for impl in getattr(pm.hook, name).get_hookimpls():
            out.append((name, impl.function, dict(impl.opts)))
    return out


def _installed_plugins() -> list[str]:
    names = [ep.value.partition(":")[0].strip() for ep in entry_points(ENTRY_POINT_GROUP)]
    return sorted(set(names) | set(BUILTINS.values()))


PLUGINS = {
    "module": _module,
    "module subclass": lambda: _module(_SubModule),
    "class": lambda: _ClassPlugin,
    "instance": _ClassPlugin,
}


@pytest.mark.parametrize("shape", list(PLUGINS))
def test_same_implementations_as_pluggy(shape: str) -> None:
    plugin = PLUGINS[shape]()
    want = _found(pluggy.PluginManager, plugin)
    assert want  # the case has implementations to find
    assert _found(PluginManager, plugin) == want


@pytest.mark.parametrize("module", _installed_plugins())
def test_same_implementations_for_every_installed_plugin(module: str) -> None:
    plugin = importlib.import_module(module)
    want = _found(pluggy.PluginManager, plugin)
    assert want, f"{module} has no hook implementations"
    assert _found(PluginManager, plugin) == want


def test_a_module_value_is_never_asked_for_attributes() -> None:
    """Looking for implementations reads no attribute of a module's other values (that could run their code)."""

    class Trap:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"asked for {name}")

    m = _module()
    m.trap = Trap()  # type: ignore[attr-defined]
    assert [n for n, _, _ in _found(PluginManager, m)] == [
        "ome_arrow_readers",
        "ome_arrow_writers",
        "ome_arrow_exporters",
    ]


def _specs(manager: type[pluggy.PluginManager], namespace: object) -> dict[str, tuple[Any, dict[str, Any]]]:
    pm = manager(specs.PROJECT)
    pm.add_hookspecs(namespace)
    out = {}
    for name, caller in vars(pm.hook).items():
        spec = getattr(caller, "spec", None)
        if spec is not None:
            out[name] = (spec.function, dict(spec.opts))
    return out


def _spec_module(cls: type[types.ModuleType] = types.ModuleType) -> types.ModuleType:
    m = cls("made_up_specs")
    m.ome_arrow_things = specs.hookspec(lambda: [])  # type: ignore[attr-defined]
    m.ome_arrow_first = specs.hookspec(firstresult=True)(lambda: None)  # type: ignore[attr-defined]
    m.unmarked = lambda: None  # type: ignore[attr-defined]
    m.impl_not_spec = hookimpl(lambda: [])  # type: ignore[attr-defined]
    m.imported_name = Sequence  # type: ignore[attr-defined]
    m.a_module = sys  # type: ignore[attr-defined]
    m.static = staticmethod(specs.hookspec(lambda: []))  # type: ignore[attr-defined]
    return m


class _SpecClass:
    @specs.hookspec
    def ome_arrow_things(self) -> list[Any]:
        return []

    @staticmethod
    @specs.hookspec(historic=True)
    def ome_arrow_later() -> None:
        return None

    def unmarked(self) -> None:
        return None


SPECS = {
    "our hookspecs": lambda: specs,
    "module": _spec_module,
    "module subclass": lambda: _spec_module(_SubModule),
    "class": lambda: _SpecClass,
}


@pytest.mark.parametrize("shape", list(SPECS))
def test_same_specifications_as_pluggy(shape: str) -> None:
    namespace = SPECS[shape]()
    want = _specs(pluggy.PluginManager, namespace)
    assert want  # the case has specifications to find
    assert _specs(PluginManager, namespace) == want


def test_a_spec_module_value_is_never_asked_for_attributes() -> None:
    """Looking for specifications reads no attribute of a module's other values (that could run their code)."""

    class Trap:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"asked for {name}")

    m = _spec_module()
    m.trap = Trap()  # type: ignore[attr-defined]
    assert sorted(_specs(PluginManager, m)) == sorted(_specs(pluggy.PluginManager, _spec_module()))
