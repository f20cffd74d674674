"""The plugin registry: in-code registration, priorities, blocking, broken plugins, entry points."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
from collections.abc import Sequence
from types import ModuleType

import numpy as np
import pytest

from ome_arrow_core import (
    BackendUnavailableError,
    DeviceError,
    Exporter,
    Ingester,
    OMEArrow,
    PluginError,
    Registry,
    hookimpl,
)
from ome_arrow_core.dlpack import DLPackTensor


class Tagged(np.ndarray):
    pass


def make_plugin(priority: int, tag: list[str], name: str) -> object:
    class Plugin:
        @hookimpl
        def ome_arrow_ingesters(self) -> Sequence[Ingester]:
            def to_numpy(obj: object) -> np.ndarray:
                tag.append(name)
                return np.asarray(obj).view(np.ndarray)

            return [Ingester(name=name, priority=priority, matches=lambda o: isinstance(o, Tagged), to_numpy=to_numpy)]

    return Plugin()


def test_own_registry_priority_and_no_global_state() -> None:
    calls: list[str] = []
    reg = Registry(autoload=False)
    reg.register(make_plugin(20, calls, "low"), name="low")  # above the built-in numpy ingester (10)
    reg.register(make_plugin(50, calls, "high"), name="high")
    OMEArrow(np.zeros((3, 3)).view(Tagged), registry=reg)
    assert calls == ["high"]
    reg.unregister("high")
    OMEArrow(np.zeros((3, 3)).view(Tagged), registry=reg)
    assert calls == ["high", "low"]
    with pytest.raises(PluginError, match="already registered"):
        reg.register(make_plugin(1, calls, "low"), name="low")


def test_builtins_only_registry_has_no_entry_point_plugins() -> None:
    reg = Registry(autoload=False)
    assert {r.plugin for r in reg.plugins()} == {"numpy", "parquet", "cpu"}
    bare = Registry(autoload=False, builtins=False)
    assert bare.plugins() == []
    with pytest.raises(PluginError, match="no plugin handles"):
        OMEArrow(np.zeros((2, 2)), registry=bare)


def test_broken_hook_is_reported_not_fatal() -> None:
    class Broken:
        @hookimpl
        def ome_arrow_exporters(self) -> Sequence[Exporter]:
            raise RuntimeError("boom")

    reg = Registry(autoload=False)
    reg.register(Broken(), name="broken")
    view = OMEArrow(np.ones((2, 2), np.uint8), registry=reg).tensor_view(layout="YX")
    np.testing.assert_array_equal(np.from_dlpack(view.to_dlpack()), np.ones((2, 2)))
    assert "boom" in reg.failures["broken"]
    assert any(r.kind == "failed" and r.plugin == "broken" for r in reg.plugins())


def test_unavailable_backend_names_the_extra() -> None:
    class Missing:
        @hookimpl
        def ome_arrow_exporters(self) -> Sequence[Exporter]:
            return [Exporter(name="ghost", devices=("cuda",), modes=("ghost",), requires=("no_such_module_xyz",),
                             extra="ghost", export=lambda v, **_: DLPackTensor(v.to_numpy()))]

    reg = Registry(autoload=False)
    reg.register(Missing(), name="ghost")
    view = OMEArrow(np.ones((2, 2), np.uint8), registry=reg).tensor_view(layout="YX")
    with pytest.raises(BackendUnavailableError, match=r'pip install "ome-arrow-core\[ghost\]"'):
        view.to_dlpack(device="cuda")
    row = next(r for r in reg.plugins() if r.name == "ghost")
    assert not row.available and row.install == 'pip install "ome-arrow-core[ghost]"'
    with pytest.raises(DeviceError, match="Unsupported device"):
        view.to_dlpack(device="tpu")


class FakeDist(md.Distribution):
    """An installed-looking distribution with one entry point, as pluggy's own tests fake them."""

    def __init__(self, name: str, value: str) -> None:
        self._files = {
            "METADATA": f"Name: {name}\nVersion: 9.9.9\n",
            "entry_points.txt": f"[ome_arrow_core.plugins]\n{name} = {value}\n",
        }

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path: str | os.PathLike[str]) -> os.PathLike[str]:
        raise NotImplementedError


def test_entry_points_are_loaded_and_broken_ones_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    good = ModuleType("fake_good_plugin")
    calls: list[str] = []
    plugin = make_plugin(99, calls, "fake")
    good.ome_arrow_ingesters = plugin.ome_arrow_ingesters  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_good_plugin", good)
    dists = [FakeDist("fakegood", "fake_good_plugin"), FakeDist("fakebad", "no_such_plugin_module_abc")]
    real = md.entry_points

    def entry_points(**kw: str) -> md.EntryPoints:
        if kw.get("group") == "ome_arrow_core.plugins":
            return md.EntryPoints(ep for d in dists for ep in d.entry_points)
        return real(**kw)

    monkeypatch.setattr(md, "entry_points", entry_points)
    reg = Registry()
    OMEArrow(np.zeros((2, 2)).view(Tagged), registry=reg)
    assert calls == ["fake"]
    rows = {r.plugin: r for r in reg.plugins()}
    assert rows["fakegood"].version == "9.9.9"
    assert "ModuleNotFoundError" in reg.failures["fakebad"]


def test_env_var_blocks_plugins() -> None:
    code = ("import ome_arrow_core as o; print(sorted({r.plugin for r in o.plugins()}))")
    env = {**os.environ, "OME_ARROW_CORE_BLOCK_PLUGINS": "parquet, cpu"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "'parquet'" not in out and "'cpu'" not in out and "'numpy'" in out


def test_no_heavy_import_at_import_or_plugin_load() -> None:
    code = (
        "import sys, numpy as np, ome_arrow_core as o\n"
        "o.plugins(); v = o.OMEArrow(np.zeros((4, 4))).tensor_view(); np.from_dlpack(v.to_dlpack())\n"
        "print([m for m in ('torch', 'jax', 'cupy', 'tifffile', 'vortex', 'ome_arrow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
