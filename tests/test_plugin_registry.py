"""The plugin registry: in-code plugins, priorities, blocking, broken plugins, entry points, availability."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import ome_arrow_core
import ome_arrow_core.entry_points as entry_points_module
from ome_arrow_core import (
    BackendUnavailableError,
    DeviceError,
    Exporter,
    Ingester,
    OMEArrow,
    PluginError,
    Reader,
    Registry,
    Writer,
    default_registry,
    hookimpl,
)
from ome_arrow_core.dlpack import DLPackTensor
from ome_arrow_core.registry import BLOCK_ENV, BUILTINS, ENTRY_POINT_GROUP


class Tagged(np.ndarray):
    """An ndarray subclass that test plugins claim."""


def ingest_plugin(
    name: str, priority: int, calls: list[str], requires: tuple[str, ...] = (), extra: str | None = None
) -> object:
    """A plugin object whose ingester claims Tagged arrays and records each use."""

    def to_numpy(obj: object) -> np.ndarray:
        calls.append(name)
        return np.asarray(obj).view(np.ndarray)

    class Plugin:
        @hookimpl
        def ome_arrow_ingesters(self) -> Sequence[Ingester]:
            return [
                Ingester(
                    name=name,
                    priority=priority,
                    requires=requires,
                    extra=extra,
                    matches=lambda o: isinstance(o, Tagged),
                    to_numpy=to_numpy,
                )
            ]

    return Plugin()


def tagged() -> Tagged:
    return np.arange(6, dtype=np.uint8).reshape(2, 3).view(Tagged)


def test_in_code_plugins_and_priority_order() -> None:
    calls: list[str] = []
    reg = Registry(autoload=False)
    assert reg.register(ingest_plugin("low", 20, calls), name="low") == "low"
    reg.register(ingest_plugin("high", 50, calls), name="high")
    reg.register(ingest_plugin("also-high", 50, calls), name="also-high")  # ties: registration order
    names = [h.name for h in reg.ingesters()]
    assert names[:3] == ["high", "also-high", "low"] and names[-1] == "array-like"
    assert [h.priority for h in reg.ingesters()] == sorted((h.priority for h in reg.ingesters()), reverse=True)
    img = OMEArrow(tagged(), registry=reg)
    assert calls == ["high"]
    np.testing.assert_array_equal(img.tensor_view(layout="YX").to_numpy(), np.arange(6).reshape(2, 3))
    reg.unregister("high")
    OMEArrow(tagged(), registry=reg)
    assert calls == ["high", "also-high"]
    with pytest.raises(PluginError, match="a plugin named 'low' is already registered"):
        reg.register(ingest_plugin("low", 1, calls), name="low")
    assert {h.plugin for h in reg.ingesters()} >= {"low", "also-high", "numpy"}


def test_own_registries_do_not_leak_into_the_default_one() -> None:
    calls: list[str] = []
    reg = Registry(autoload=False)
    reg.register(ingest_plugin("mine", 99, calls), name="mine")
    OMEArrow(tagged())  # the default registry: the built-in numpy ingester handles it
    assert calls == []
    assert "mine" not in {r.plugin for r in default_registry().plugins()}


def test_builtins_are_ordinary_plugins() -> None:
    reg = Registry(autoload=False)
    assert {r.plugin for r in reg.plugins()} == {"numpy", "parquet", "npy", "cpu"}
    bare = Registry(autoload=False, builtins=False)
    assert bare.plugins() == []
    with pytest.raises(PluginError, match="no plugin handles input of type numpy.ndarray"):
        OMEArrow(np.zeros((2, 2)), registry=bare)
    partial = Registry(autoload=False, blocked={"parquet"})
    with pytest.raises(PluginError, match="unknown suffix"):
        partial.resolve_reader("x.ome.parquet")
    assert partial.blocked == frozenset({"parquet"})
    assert partial.register(ingest_plugin("parquet", 1, []), name="parquet") == "parquet"  # silently skipped
    assert "parquet" not in {r.plugin for r in partial.plugins()}


def test_an_unavailable_higher_priority_handler_falls_back() -> None:
    calls: list[str] = []
    reg = Registry(autoload=False)
    reg.register(ingest_plugin("ghost", 90, calls, requires=("no_such_module_oac",), extra="ghost"), name="ghost")
    reg.register(ingest_plugin("real", 30, calls), name="real")
    OMEArrow(tagged(), registry=reg)
    assert calls == ["real"]
    rows = {r.name: r for r in reg.plugins()}
    assert not rows["ghost"].available and rows["ghost"].install == 'pip install "ome-arrow-core[ghost]"'
    assert rows["real"].available and rows["real"].install == ""


def test_unavailable_backend_says_what_to_install(tmp_path: Path) -> None:
    class Missing:
        @hookimpl
        def ome_arrow_exporters(self) -> Sequence[Exporter]:
            return [
                Exporter(
                    name="ghostgpu",
                    devices=("cuda",),
                    modes=("ghost",),
                    requires=("no_such_module_oac",),
                    extra="ghost",
                    export=lambda v, **_: DLPackTensor(v.to_numpy()),
                )
            ]

        @hookimpl
        def ome_arrow_writers(self) -> Sequence[Writer]:
            return [
                Writer(
                    name="ghostw",
                    formats=("ghostfmt",),
                    requires=("no_such_module_oac", "another_missing_oac"),
                    write=lambda *a, **k: None,
                )
            ]

    reg = Registry(autoload=False)
    reg.register(Missing(), name="ghost")
    img = OMEArrow(np.ones((2, 2), np.uint8), registry=reg)
    view = img.tensor_view(layout="YX")
    with pytest.raises(
        BackendUnavailableError,
        match=r'device \'cuda\' needs a backend that is not installed; install one with: pip install "ome-arrow-core\[ghost\]"',
    ):
        view.to_dlpack(device="cuda")
    with pytest.raises(ImportError):  # BackendUnavailableError is an ImportError too
        view.to_dlpack(device="cuda:0", mode="ghost")
    with pytest.raises(BackendUnavailableError, match="pip install no_such_module_oac another_missing_oac"):
        img.export("ghostfmt", tmp_path / "never-written.x")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(
        BackendUnavailableError, match=r"'ghostgpu' backend needs no_such_module_oac, which is not installed"
    ):
        next(h for h in reg.exporters() if h.name == "ghostgpu").ensure_available()


def test_requirements_are_found_without_importing_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "oac_import_probe.py").write_text("raise RuntimeError('imported!')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Probe:
        @hookimpl
        def ome_arrow_exporters(self) -> Sequence[Exporter]:
            return [
                Exporter(
                    name="probe",
                    modes=("probe",),
                    requires=("oac_import_probe",),
                    export=lambda v, **_: DLPackTensor(v.to_numpy()),
                )
            ]

    reg = Registry(autoload=False)
    reg.register(Probe(), name="probe")
    assert next(r for r in reg.plugins() if r.name == "probe").available
    out = np.from_dlpack(
        OMEArrow(np.eye(3, dtype=np.float32), registry=reg).tensor_view(layout="YX").to_dlpack(mode="probe")
    )
    np.testing.assert_array_equal(out, np.eye(3))
    assert "oac_import_probe" not in sys.modules


def test_a_raising_hook_is_recorded_and_the_rest_works() -> None:
    class Broken:
        @hookimpl
        def ome_arrow_exporters(self) -> Sequence[Exporter]:
            raise RuntimeError("boom")

        @hookimpl
        def ome_arrow_readers(self) -> Sequence[Reader]:
            return ["not a handler"]  # type: ignore[list-item]

    reg = Registry(autoload=False)
    reg.register(Broken(), name="broken")
    view = OMEArrow(np.ones((2, 2), np.uint8), registry=reg).tensor_view(layout="YX")
    np.testing.assert_array_equal(np.from_dlpack(view.to_dlpack()), np.ones((2, 2)))
    assert reg.failures["broken"] == "ome_arrow_exporters: RuntimeError: boom"
    assert [r.name for r in reg.readers()] == ["parquet", "npy"]
    reg.readers()
    assert "ome_arrow_readers returned str, expected Reader" in reg.failures["broken"]
    failed = [r for r in reg.plugins() if r.kind == "failed"]
    assert [(r.plugin, r.available) for r in failed] == [("broken", False)] and "expected Reader" in failed[0].error


def test_resolution_by_suffix_format_sniff_and_device(tmp_path: Path) -> None:
    reg = Registry(autoload=False)
    assert reg.resolve_reader("a/b/x.OME.Parquet").name == "parquet"
    assert reg.resolve_reader("x.weird", format="parquet").name == "parquet"
    with pytest.raises(PluginError, match=r"no plugin handles path 'x.weird' \(unknown suffix\)"):
        reg.resolve_reader("x.weird")
    OMEArrow(np.zeros((2, 2), np.uint8)).export("parquet", tmp_path / "noext")
    assert reg.resolve_reader(tmp_path / "noext").name == "parquet"  # a dataset directory is sniffed
    assert reg.resolve_writer("ome-parquet").name == "parquet"
    with pytest.raises(PluginError, match="no writer for how='gif'; known formats: .*parquet"):
        reg.resolve_writer("gif")
    assert reg.resolve_exporter("cpu", np.dtype("uint8")).name in ("arrow", "numpy")
    with pytest.raises(DeviceError, match="Unsupported device 'tpu'"):
        reg.resolve_exporter("tpu", np.dtype("uint8"))
    with pytest.raises(
        PluginError, match="no exporter for device='cpu', dtype=uint8, mode='nope'; modes for cpu: arrow, numpy"
    ):
        reg.resolve_exporter("cpu", np.dtype("uint8"), "nope")


class SniffingReaders:
    """Readers of one priority registered before the built-ins: one claims ``.snf`` files by sniffing everything."""

    def __init__(self, priority: int, sniffed: list[str]) -> None:
        self.priority, self.sniffed = priority, sniffed

    def sniff(self, path: Path) -> bool:
        self.sniffed.append(path.name)
        return True

    @hookimpl
    def ome_arrow_readers(self) -> Sequence[Reader]:
        return [Reader(name="sniffer", priority=self.priority, suffixes=(".snf",), sniff=self.sniff)]


def test_a_suffix_claim_is_asked_before_a_sniff_of_the_same_priority() -> None:
    sniffed: list[str] = []
    reg = Registry(autoload=False, builtins=False)
    reg.register(SniffingReaders(0, sniffed), name="sniffing")  # registered first: listed before parquet
    reg.register(importlib.import_module(BUILTINS["parquet"]), name="parquet")
    assert [h.name for h in reg.readers()] == ["sniffer", "parquet"]
    assert reg.resolve_reader("x.ome.parquet").name == "parquet"  # parquet's suffix: the sniffer is never asked
    assert sniffed == []
    assert reg.resolve_reader("x.snf").name == "sniffer"  # its own suffix
    assert reg.resolve_reader("x.unknown").name == "sniffer" and sniffed == ["x.unknown"]  # no claim: it sniffs
    higher = Registry(autoload=False)
    higher.register(SniffingReaders(10, sniffed), name="sniffing")
    assert higher.resolve_reader("x.ome.parquet").name == "sniffer"  # a higher priority still sniffs first
    assert sniffed == ["x.unknown", "x.ome.parquet"]


def test_exporters_may_be_limited_to_dtypes() -> None:
    class FloatOnly:
        @hookimpl
        def ome_arrow_exporters(self) -> Sequence[Exporter]:
            return [
                Exporter(
                    name="f32",
                    modes=("special",),
                    dtypes=("float32",),
                    priority=5,
                    export=lambda v, **_: DLPackTensor(v.to_numpy()),
                )
            ]

    reg = Registry(autoload=False)
    reg.register(FloatOnly(), name="f32")
    assert reg.resolve_exporter("cpu", np.dtype("float32"), "special").name == "f32"
    with pytest.raises(PluginError, match="no exporter for device='cpu', dtype=uint16, mode='special'"):
        reg.resolve_exporter("cpu", np.dtype("uint16"), "special")


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("tpu", "Unsupported device 'tpu'; expected 'cpu', 'cuda' or 'cuda:N'"),
        ("cuda:x", "device index in 'cuda:x' must be a non-negative integer"),
        ("cuda:-1", "must be a non-negative integer"),
    ],
)
def test_bad_device_strings(device: str, match: str) -> None:
    view = OMEArrow(np.zeros((2, 2), np.uint8)).tensor_view()
    with pytest.raises(DeviceError, match=match):
        view.to_dlpack(device=device)


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
