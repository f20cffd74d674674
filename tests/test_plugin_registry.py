"""The plugin registry: in-code plugins, priorities, broken hooks, resolution, availability, devices.

Entry points, blocking and the public listing: test_plugin_discovery.py.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from tagged_plugins import ingest_plugin, tagged

from ome_arrow_core import (
    BackendUnavailableError,
    DeviceError,
    Exporter,
    OMEArrow,
    PluginError,
    Reader,
    Registry,
    Writer,
    default_registry,
    hookimpl,
)
from ome_arrow_core.dlpack import DLPackTensor
from ome_arrow_core.registry import BUILTINS


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
