"""``Exporter.export_many``: a stream to a device hands each group of items to it in one call.

The exporter here is a real plugin on a registry (``device="cuda"`` needs no GPU to resolve: its export
functions copy to numpy), so the core's grouping, order, failures and fallbacks run without a device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import flip_byte
from test_tile_streams import page_of_tile, pixels, tiles_of, written

import ome_arrow_core
from ome_arrow_core import OMEArrow, Registry, TensorView
from ome_arrow_core.errors import ChecksumError, PluginError
from ome_arrow_core.iteration import GROUP_ITEMS
from ome_arrow_core.registry import PluginWarning

#: What the fallback warns (once per exporter) when the Probe's export_many raises.
FELL_BACK = "'probe' exporter's export_many .plugin 'probe'. raised RuntimeError: the device refused the group"


class Probe:
    """A plugin whose exporter records its calls: ``many`` holds each export_many group's length.

    ``fail_many``: export_many raises for a group of that many views; ``bad``: export raises for the view of
    those pixels (tiles of random pixels: each is one tile, whichever thread exports it).
    """

    def __init__(
        self,
        many: bool,
        devices: tuple[str, ...] = ("cuda",),
        fail_many: int | None = None,
        bad: np.ndarray | None = None,
        drop: bool = False,
    ) -> None:
        self.many_calls: list[int] = []
        self.one_calls = 0
        self.with_many, self.devices, self.fail_many, self.bad, self.drop = many, devices, fail_many, bad, drop

    def export(self, view: TensorView, **_: Any) -> np.ndarray:
        self.one_calls += 1
        host = view.to_numpy()
        if self.bad is not None and np.array_equal(host, self.bad):
            raise RuntimeError("the device refused this tile")
        return np.array(host, copy=True)

    def export_many(self, views: Sequence[TensorView], **_: Any) -> list[np.ndarray]:
        self.many_calls.append(len(views))
        if len(views) == self.fail_many:
            raise RuntimeError("the device refused the group")
        return [np.array(v.to_numpy(), copy=True) for v in views[: len(views) - self.drop]]

    @ome_arrow_core.hookimpl
    def ome_arrow_exporters(self) -> list[ome_arrow_core.Exporter]:
        return [
            ome_arrow_core.Exporter(
                name="probe",
                devices=self.devices,
                modes=("probe",),
                priority=100,
                export=self.export,
                export_many=self.export_many if self.with_many else None,
            )
        ]


def registry_with(probe: Probe) -> Registry:
    reg = Registry()
    reg.register(probe, name="probe")
    return reg


@pytest.mark.parametrize("lazy", [True, False], ids=["file", "in memory"])
@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_device_stream_exports_each_group_in_one_call(tmp_path: Path, lazy: bool, prefetch: int) -> None:
    a = pixels((2, 1, 96, 80), "uint16", seed=1)  # ZCYX: 2 planes of 6 x 5 tiles of 16x16
    probe = Probe(many=True)
    reg = registry_with(probe)
    img = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=reg) if lazy else OMEArrow(a, "ZCYX", registry=reg)
    got = [
        np.asarray(t)
        for z in range(2)
        for t in img.tensor_view(z=z, layout="YX").iter_dlpack(tile_size=(16, 16), device="cuda", prefetch=prefetch)
    ]
    expected = tiles_of(a[0, 0], 16, 16) + tiles_of(a[1, 0], 16, 16)
    assert len(got) == len(expected) == 60
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert probe.many_calls == [30, 30] and probe.one_calls == 0  # one call a plane (a group of <= 64)


def test_groups_are_at_most_group_items(tmp_path: Path) -> None:
    a = pixels((1, 1, 160, 160), "uint8", seed=3)  # 100 tiles of 16x16: two groups
    probe = Probe(many=True)
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=registry_with(probe)).tensor_view(layout="YX")
    got = [np.asarray(t) for t in view.iter_dlpack(tile_size=(16, 16), device="cuda:0")]
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16), strict=True):
        np.testing.assert_array_equal(g, e)
    assert probe.many_calls == [GROUP_ITEMS, 100 - GROUP_ITEMS]


def test_without_export_many_items_go_one_by_one(tmp_path: Path) -> None:
    a = pixels((1, 1, 48, 48), "int16", seed=4)
    probe = Probe(many=False)
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=registry_with(probe)).tensor_view(layout="YX")
    got = [np.asarray(t) for t in view.iter_dlpack(tile_size=(16, 16), device="cuda")]
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16), strict=True):
        np.testing.assert_array_equal(g, e)
    assert probe.one_calls == 9 and probe.many_calls == []


class CountingRegistry(Registry):
    """A registry that counts the exporter lookups it answers."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def resolve_exporter(self, device: str, dtype: np.dtype, mode: str | None = None) -> ome_arrow_core.Exporter:
        self.lookups += 1
        return super().resolve_exporter(device, dtype, mode)


@pytest.mark.parametrize("many", [True, False], ids=["export_many", "export"])
def test_a_group_looks_its_exporter_up_once(tmp_path: Path, many: bool) -> None:
    a = pixels((1, 1, 48, 48), "uint16", seed=6)  # 9 tiles: one group
    probe = Probe(many=many)
    reg = CountingRegistry()
    reg.register(probe, name="probe")
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=reg).tensor_view(layout="YX")
    reg.lookups = 0
    got = [np.asarray(t) for t in view.iter_dlpack(tile_size=(16, 16), device="cuda")]
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16), strict=True):
        np.testing.assert_array_equal(g, e)
    assert (probe.many_calls, probe.one_calls) == (([9], 0) if many else ([], 9))
    assert reg.lookups == 1


def test_cpu_streams_never_call_export_many(tmp_path: Path) -> None:
    a = pixels((1, 1, 48, 48), "uint16", seed=5)
    probe = Probe(many=True, devices=("cpu", "cuda"))
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=registry_with(probe)).tensor_view(layout="YX")
    got = [np.asarray(t) for t in view.iter_dlpack(tile_size=(16, 16), mode="probe")]
    assert len(got) == 9 and probe.one_calls == 9 and probe.many_calls == []


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_flipped_byte_raises_at_its_tile_after_the_tiles_before_it(tmp_path: Path, prefetch: int) -> None:
    a = pixels((1, 1, 160, 160), "uint16", seed=2)
    out = written(tmp_path, a, (16, 16))
    probe = Probe(many=True)
    img = OMEArrow.scan(out, registry=registry_with(probe))
    img.to_numpy()  # audited: the stream reads the whole chunks together
    off, size = page_of_tile(out, 0, 0, 112, 32)  # tile 72: in the second group
    flip_byte(out / "chunks.parquet", off + size - 3)
    got = []
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=(16, 16), device="cuda", prefetch=prefetch):
            got.append(np.asarray(t))
    assert len(got) == 72  # the 64 of the first group, the 8 read before the damaged one, and no more
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16)):
        np.testing.assert_array_equal(g, e)
    assert sorted(probe.many_calls) == [72 - GROUP_ITEMS, GROUP_ITEMS] and probe.one_calls == 0  # (threads: any order)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_failing_export_many_goes_tile_by_tile_and_raises_at_the_failing_tile(tmp_path: Path, prefetch: int) -> None:
    a = pixels((1, 1, 160, 160), "uint16", seed=6)  # 100 tiles: groups of 64 and 36
    expected = tiles_of(a[0, 0], 16, 16)
    probe = Probe(many=True, fail_many=100 - GROUP_ITEMS, bad=expected[73])  # the second group, its 10th tile
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=registry_with(probe)).tensor_view(layout="YX")
    got = []
    with pytest.warns(PluginWarning, match=FELL_BACK), pytest.raises(RuntimeError, match="refused this tile"):
        for t in view.iter_dlpack(tile_size=(16, 16), device="cuda", prefetch=prefetch):
            got.append(np.asarray(t))
    assert len(got) == 73  # the first group's 64 and the 9 good tiles of the second before the failing one
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert sorted(probe.many_calls) == [100 - GROUP_ITEMS, GROUP_ITEMS] and probe.one_calls == 10


@pytest.mark.parametrize("lazy", [True, False], ids=["file", "in memory"])
def test_the_fallback_is_per_group(tmp_path: Path, lazy: bool) -> None:
    a = pixels((1, 1, 160, 160), "uint16", seed=8)
    probe = Probe(many=True, fail_many=GROUP_ITEMS)  # the first group's export_many fails, once; export succeeds
    reg = registry_with(probe)
    img = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=reg) if lazy else OMEArrow(a, "ZCYX", registry=reg)
    with pytest.warns(PluginWarning, match=FELL_BACK):
        got = [np.asarray(t) for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=(16, 16), device="cuda")]
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16), strict=True):  # every tile, in order
        np.testing.assert_array_equal(g, e)
    assert probe.many_calls == [GROUP_ITEMS, 100 - GROUP_ITEMS]  # the second group still in one call
    assert probe.one_calls == GROUP_ITEMS  # the first group tile by tile


class BrokenGPU:
    """A third party's plugin whose export_many always raises (a broken batched copy); export works."""

    def __init__(self) -> None:
        self.many_calls = self.one_calls = 0

    def export(self, view: TensorView, **_: Any) -> np.ndarray:
        self.one_calls += 1
        return np.array(view.to_numpy(), copy=True)

    def export_many(self, views: Sequence[TensorView], **_: Any) -> list[np.ndarray]:
        self.many_calls += 1
        raise ValueError("batched copy is broken")

    @ome_arrow_core.hookimpl
    def ome_arrow_exporters(self) -> list[ome_arrow_core.Exporter]:
        return [
            ome_arrow_core.Exporter(
                name="acme-gpu", devices=("cuda",), modes=("acme",), export=self.export, export_many=self.export_many
            )
        ]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_failing_export_many_warns_once_per_exporter(tmp_path: Path, prefetch: int) -> None:
    a = pixels((1, 1, 160, 160), "uint16", seed=11)  # 100 tiles: two groups, both fail
    out = written(tmp_path, a, (16, 16))

    def stream(plugin: BrokenGPU) -> list[np.ndarray]:
        reg = Registry()
        reg.register(plugin, name="acme_gpu")
        view = OMEArrow.scan(out, registry=reg).tensor_view(layout="YX")
        tiles = view.iter_dlpack(tile_size=(16, 16), device="cuda", mode="acme", prefetch=prefetch)
        return [np.asarray(t) for t in tiles]

    plugin = BrokenGPU()
    with pytest.warns(PluginWarning) as caught:
        got = stream(plugin)
        got += stream(plugin)  # the same plugin on another registry: another exporter, warned again
    for g, e in zip(got, 2 * tiles_of(a[0, 0], 16, 16), strict=True):  # every tile, in order
        np.testing.assert_array_equal(g, e)
    assert plugin.many_calls == 4 and plugin.one_calls == 200  # the fallback kept: each group tile by tile
    fell_back = [w for w in caught if issubclass(w.category, PluginWarning)]
    assert len(fell_back) == 2  # once per exporter, not once per group
    message = str(fell_back[0].message)
    assert "'acme-gpu' exporter's export_many (plugin 'acme_gpu') raised ValueError: batched copy is broken" in message
    assert "exported tile by tile with its export instead" in message
    assert "OME_ARROW_CORE_BLOCK_PLUGINS=acme_gpu" in message  # how to get rid of it
    assert fell_back[0].filename == __file__  # pointed at the loop that consumes the stream, not at the library


def test_no_warning_when_export_fails_too(tmp_path: Path) -> None:
    class AllBroken(BrokenGPU):
        def export(self, view: TensorView, **_: Any) -> np.ndarray:
            raise RuntimeError("no device")

    a = pixels((1, 1, 48, 48), "uint16", seed=12)
    reg = Registry()
    reg.register(AllBroken(), name="acme_gpu")
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=reg).tensor_view(layout="YX")
    with pytest.raises(RuntimeError, match="no device"):  # (filterwarnings=error: a warning would raise instead)
        next(iter(view.iter_dlpack(tile_size=(16, 16), device="cuda", mode="acme")))


def test_an_interrupt_in_export_many_is_not_retried_tile_by_tile(tmp_path: Path) -> None:
    class Interrupted(Probe):
        def export_many(self, views: Sequence[TensorView], **_: Any) -> list[np.ndarray]:
            self.many_calls.append(len(views))
            raise KeyboardInterrupt

    a = pixels((1, 1, 48, 48), "uint16", seed=10)
    probe = Interrupted(many=True)
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=registry_with(probe)).tensor_view(layout="YX")
    with pytest.raises(KeyboardInterrupt):
        next(iter(view.iter_dlpack(tile_size=(16, 16), device="cuda")))
    assert probe.many_calls == [9] and probe.one_calls == 0


def test_a_failing_export_many_after_a_read_failure_keeps_the_read_tiles(tmp_path: Path) -> None:
    a = pixels((1, 1, 160, 160), "uint16", seed=9)
    out = written(tmp_path, a, (16, 16))
    probe = Probe(many=True, fail_many=8)  # the second group ends at the damaged tile: 8 views read
    img = OMEArrow.scan(out, registry=registry_with(probe))
    img.to_numpy()  # audited: the stream reads the whole chunks together
    off, size = page_of_tile(out, 0, 0, 112, 32)  # tile 72
    flip_byte(out / "chunks.parquet", off + size - 3)
    got = []
    with pytest.warns(PluginWarning, match=FELL_BACK), pytest.raises(ChecksumError, match="do not match their"):
        for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=(16, 16), device="cuda"):
            got.append(np.asarray(t))
    assert len(got) == 72 and probe.many_calls == [GROUP_ITEMS, 8] and probe.one_calls == 8
    for g, e in zip(got, tiles_of(a[0, 0], 16, 16)):
        np.testing.assert_array_equal(g, e)


def test_an_export_many_that_returns_too_few_tensors_is_a_plugin_error(tmp_path: Path) -> None:
    a = pixels((1, 1, 48, 48), "uint16", seed=7)
    probe = Probe(many=True, drop=True)
    view = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=registry_with(probe)).tensor_view(layout="YX")
    with pytest.raises(PluginError, match="export_many returned 8 tensors for 9 views"):
        next(iter(view.iter_dlpack(tile_size=(16, 16), device="cuda")))
