"""Finding plugins: entry points loaded (broken ones reported), blocked by name or environment, and listed."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from tagged_plugins import ingest_plugin, tagged

import ome_arrow_core
import ome_arrow_core.entry_points as entry_points_module
from ome_arrow_core import OMEArrow, PluginError, Registry
from ome_arrow_core.registry import BLOCK_ENV, ENTRY_POINT_GROUP


def test_env_var_blocks_plugins_in_a_fresh_process() -> None:
    # blocked plugins are listed as blocked (not dropped); integrations (dask, ray) are not plugins
    code = (
        "import json, ome_arrow_core as o; rows = o.plugins(); "
        "print(json.dumps(sorted({r.plugin for r in rows if not r.blocked and r.kind != 'integration'})))"
    )
    env = {**os.environ, BLOCK_ENV: "parquet, cpu ,"}  # spaces and empty names are fine
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    plugins = json.loads(out)
    assert "parquet" not in plugins and "cpu" not in plugins and "numpy" in plugins
    # block every installed plugin but numpy: nothing can export, and the error says why
    others = {ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)} | {"parquet", "npy", "cpu"}
    env = {**os.environ, BLOCK_ENV: ",".join(sorted(others - {"numpy"}))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["numpy"]
    listing = subprocess.run(
        [sys.executable, "-m", "ome_arrow_core.cli", "plugins"], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert any(line.startswith("tiff ") and line.endswith(f"blocked by {BLOCK_ENV}") for line in listing.splitlines())
    code = textwrap.dedent("""
        import numpy as np, ome_arrow_core as o
        try:
            o.OMEArrow(np.zeros((2, 2))).tensor_view().to_dlpack()
        except o.PluginError as e:
            print("refused:", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused: no exporter plugin is loaded, so nothing can export to 'cpu'")
    assert BLOCK_ENV in out


# -- entry points ---------------------------------------------------------------------------------
class FakeDist(md.Distribution):
    """An installed-looking distribution with one entry point (as pluggy's own tests fake them)."""

    def __init__(self, name: str, version: str, target: str) -> None:
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "entry_points.txt": f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n\n[other.group]\nx = os:path\n",
        }

    def read_text(self, filename: str) -> str | None:
        return self._files.get(filename)

    def locate_file(self, path: str | os.PathLike[str]) -> Path:
        raise FileNotFoundError(path)


@pytest.fixture
def fake_plugins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Installs fake distributions: a good plugin module, an object plugin, a missing module, a raising module."""
    calls: list[str] = []
    good = ModuleType("oac_fake_good")
    plugin = ingest_plugin("fake-good", 99, calls)
    good.ome_arrow_ingesters = plugin.ome_arrow_ingesters  # type: ignore[attr-defined]
    good.__version__ = "ignored"  # type: ignore[attr-defined]
    objmod = ModuleType("oac_fake_obj")
    objmod.PLUGIN = ingest_plugin("fake-obj", 1, calls)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "oac_fake_good", good)
    monkeypatch.setitem(sys.modules, "oac_fake_obj", objmod)
    dists = [
        FakeDist("fakegood", "9.9.9", "oac_fake_good"),
        FakeDist("fakeobj", "1.0", "oac_fake_obj:PLUGIN"),
        FakeDist("fakemissing", "0.1", "oac_no_such_plugin_module"),
        FakeDist("fakeattr", "0.1", "oac_fake_good:no_such_attr"),
    ]
    monkeypatch.setattr(md, "distributions", lambda **kw: iter(dists))
    # These distributions exist only in importlib.metadata's view, as if a finder of its own provided them:
    # the registry then asks importlib.metadata rather than reading entry_points.txt files itself.
    monkeypatch.setattr(entry_points_module, "_standard_library_only", lambda: True)
    return calls


def test_entry_points_are_loaded_and_broken_ones_reported(fake_plugins: list[str]) -> None:
    assert {ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)} == {
        "fakegood",
        "fakeobj",
        "fakemissing",
        "fakeattr",
    }
    reg = Registry()
    OMEArrow(tagged(), registry=reg)
    assert fake_plugins == ["fake-good"]
    rows = {r.plugin: r for r in reg.plugins() if r.kind != "failed"}
    assert rows["fakegood"].version == "9.9.9" and rows["fakeobj"].version == "1.0"
    assert {"numpy", "parquet", "cpu"} <= set(rows)
    assert reg.failures["fakemissing"].startswith("ModuleNotFoundError: No module named 'oac_no_such_plugin_module'")
    assert reg.failures["fakeattr"].startswith("AttributeError")
    failed = {r.plugin for r in reg.plugins() if r.kind == "failed"}
    assert failed == {"fakemissing", "fakeattr"}
    reg.load_entry_points()  # loading again changes nothing
    assert [h.name for h in reg.ingesters()].count("fake-good") == 1


def test_entry_points_can_be_blocked_or_switched_off(fake_plugins: list[str]) -> None:
    reg = Registry(blocked={"fakegood", "fakemissing"})
    assert "fakegood" not in {r.plugin for r in reg.plugins()} and "fakemissing" not in reg.failures
    OMEArrow(tagged(), registry=reg)
    assert fake_plugins == []  # the built-in numpy ingester (priority 10) beats fake-obj (1)
    off = Registry(autoload=False)
    assert off.failures == {} and "fakeobj" not in {r.plugin for r in off.plugins()}


def test_entry_point_module_that_raises_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "oac_raises_on_import.py").write_text("raise RuntimeError('plugin import failed')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(md, "distributions", lambda **kw: iter([FakeDist("raiser", "0.1", "oac_raises_on_import")]))
    monkeypatch.setattr(entry_points_module, "_standard_library_only", lambda: True)
    reg = Registry()
    assert reg.failures == {"raiser": "RuntimeError: plugin import failed"}
    assert OMEArrow(np.zeros((2, 2), np.uint8), registry=reg).tensor_view().shape == (1, 2, 2)


def test_public_plugin_listing() -> None:
    rows = ome_arrow_core.plugins()
    kinds = {(r.plugin, r.kind, r.name) for r in rows}
    assert {
        ("numpy", "ingest", "numpy"),
        ("parquet", "reader", "parquet"),
        ("parquet", "writer", "parquet"),
        ("cpu", "exporter", "arrow"),
        ("cpu", "exporter", "numpy"),
    } <= kinds
    reader = next(r for r in rows if r.kind == "reader" and r.name == "parquet")
    assert ".parquet" in reader.handles and reader.available
    exporter = next(r for r in rows if r.kind == "exporter" and r.name == "arrow")
    assert exporter.handles == "device=cpu mode=arrow"


def test_blocked_first_party_backend_is_listed_and_named_in_errors() -> None:
    reg = Registry(blocked={"tiff", "bioio"})  # bioio too: its bridge reads TIFF when our reader is blocked
    rows = {r.plugin: r for r in reg.plugins() if r.plugin == "tiff"}
    assert rows["tiff"].blocked and not rows["tiff"].available
    assert rows["tiff"].status == "blocked by OME_ARROW_CORE_BLOCK_PLUGINS"
    with pytest.raises(PluginError, match="'tiff' plugin .* blocked by OME_ARROW_CORE_BLOCK_PLUGINS"):
        reg.resolve_reader("cells.ome.tiff")
    with pytest.raises(PluginError, match="blocked"):
        reg.resolve_writer("ome-tiff")
    unblocked = Registry()
    assert unblocked.resolve_reader("cells.ome.tiff").name == "tiff"


def test_unknown_blocked_name_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OME_ARROW_CORE_BLOCK_PLUGINS", "tiff,tifff")
    with pytest.warns(ome_arrow_core.registry.PluginWarning, match="'tifff', which match no plugin"):
        reg = Registry()
    assert reg.blocked == {"tiff", "tifff"}


def test_first_party_not_registered_and_integrations_are_listed() -> None:
    off = Registry(autoload=False)
    with pytest.raises(PluginError, match="installed but not registered"):
        off.resolve_reader("cells.tif")
    rows = {r.plugin: r for r in Registry().plugins()}
    assert rows["dask"].kind == "integration" and rows["dask"].available
    assert rows["ray"].kind == "integration" and rows["ray"].available
