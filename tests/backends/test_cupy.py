"""The CuPy backend: discovery without CuPy, and GPU exports/ingest where a CUDA GPU exists.

How views are staged (blocks, runs, a group copy's failures): test_cupy_staging.py.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import itertools
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pinned_reads import PINNED_VIEWS, scanned

import ome_arrow_core
from ome_arrow_core import BackendUnavailableError, DeviceError, DTypeError, OMEArrow, Registry, TensorView
from ome_arrow_core.dtypes import SUPPORTED
from ome_arrow_cupy import plugin
from ome_arrow_cupy.devices import device_count
from ome_arrow_cupy.ingest import is_cupy_array

HAS_CUPY = importlib.util.find_spec("cupy") is not None


HINT = 'pip install "ome-arrow-core[cupy]"'


U16 = np.dtype("uint16")


def _entry_point() -> md.EntryPoint | None:
    found = md.entry_points(group="ome_arrow_core.plugins", name="cupy")
    return next(iter(found), None)


needs_install = pytest.mark.skipif(
    _entry_point() is None,
    reason="ome-arrow-cupy is not installed: pip install --no-deps -e backends/cupy",
)


def _registry() -> Registry:
    """A registry with the built-ins and this plugin only (no other installed backends)."""
    reg = Registry(autoload=False)
    reg.register(plugin, name="cupy")
    return reg


@pytest.fixture(scope="module")
def registry() -> Registry:
    return _registry()


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """Distinct values in TCZYX order (2, 3, 4, 37, 53): every crop is distinguishable."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 60000, size=(2, 3, 4, 37, 53), dtype=np.uint16)


@pytest.fixture
def image(pixels: np.ndarray, registry: Registry) -> OMEArrow:
    return OMEArrow(pixels, "TCZYX", registry=registry)


# -- without CuPy: discovery, laziness, routing ------------------------------------------------


def test_plugin_import_does_not_import_cupy() -> None:
    code = textwrap.dedent(
        """
        import sys
        import ome_arrow_cupy.plugin as p
        import ome_arrow_core
        ome_arrow_core.plugins()
        p.ome_arrow_exporters(); p.ome_arrow_ingesters()
        from ome_arrow_cupy.ingest import is_cupy_array
        import numpy as np
        assert not is_cupy_array(np.zeros(3))
        print("cupy" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@needs_install
def test_entry_point_names_the_plugin_module() -> None:
    ep = _entry_point()
    assert ep is not None and ep.value == "ome_arrow_cupy.plugin"
    assert ep.load() is plugin


@needs_install
def test_plugins_lists_handlers_with_availability() -> None:
    rows = [r for r in ome_arrow_core.plugins(Registry()) if r.plugin == "cupy"]
    assert {(r.kind, r.name) for r in rows} == {("exporter", "cupy"), ("ingest", "cupy")}
    for r in rows:
        assert r.available is HAS_CUPY
        assert r.install == ("" if HAS_CUPY else HINT)
        assert r.version == "0.1.0"
    exporter = next(r for r in rows if r.kind == "exporter")
    assert exporter.handles == "device=cuda mode=cupy"


def test_handlers_describe_what_they_need(registry: Registry) -> None:
    (exp,) = [h for h in registry.exporters() if h.plugin == "cupy"]
    (ing,) = [h for h in registry.ingesters() if h.plugin == "cupy"]
    for h in (exp, ing):
        assert h.requires == ("cupy",) and h.extra == "cupy" and h.install == HINT
    assert exp.priority == 10 and exp.devices == ("cuda",)


@pytest.mark.parametrize("dtype", SUPPORTED)
def test_exporter_serves_cupy_and_any_mode_on_cuda_only(registry: Registry, dtype: str) -> None:
    (exp,) = [h for h in registry.exporters() if h.plugin == "cupy"]
    dt = np.dtype(dtype)
    assert exp.handles("cuda", dt, "cupy")
    assert exp.handles("cuda", dt, None)  # to_dlpack(device="cuda")
    assert not exp.handles("cpu", dt, "cupy")
    assert not exp.handles("cuda", dt, "torch")  # to_torch(device="cuda") stays with torch
    assert not exp.handles("cuda", dt, "jax")


def test_cupy_outranks_a_priority_zero_cuda_fallback() -> None:
    registry = _registry()
    fallback = ome_arrow_core.Exporter(name="fallback", devices=("cuda",), modes=("torch",), priority=0)

    class Fallback:
        @ome_arrow_core.hookimpl
        def ome_arrow_exporters(self) -> list[ome_arrow_core.Exporter]:
            return [fallback]

    registry.register(Fallback(), name="fallback")
    cuda = [h.name for h in registry.exporters() if h.handles("cuda", U16, None)]
    assert cuda == ["cupy", "fallback"]


@pytest.mark.skipif(HAS_CUPY, reason="cupy is installed")
@pytest.mark.parametrize("call", ["to_cupy", "to_dlpack", "iter_dlpack"])
def test_without_cupy_exports_name_the_extra(image: OMEArrow, call: str) -> None:
    view = image.tensor_view(t=0, z=0)
    with pytest.raises(BackendUnavailableError, match=r"ome-arrow-core\[cupy\]"):
        if call == "to_cupy":
            view.to_cupy()
        elif call == "to_dlpack":
            view.to_dlpack(device="cuda")
        else:
            next(iter(view.iter_dlpack(device="cuda", tile_size=(16, 16))))


@needs_install
@pytest.mark.skipif(HAS_CUPY, reason="cupy is installed")
def test_without_cupy_default_registry_names_the_extra(pixels: np.ndarray) -> None:
    view = OMEArrow(pixels, "TCZYX").tensor_view(t=0, z=0)
    with pytest.raises(BackendUnavailableError, match=r"ome-arrow-core\[cupy\]"):
        view.to_cupy()


# -- with CuPy: a CUDA GPU is needed ---------------------------------------------------------


@pytest.fixture(scope="module")
def cp() -> Any:
    cupy = pytest.importorskip("cupy")
    if device_count(cupy)[0] == 0:
        pytest.skip("needs a CUDA GPU")
    return cupy


def test_cupy_without_gpu_raises_device_error(image: OMEArrow) -> None:
    cupy = pytest.importorskip("cupy")
    n, _why = device_count(cupy)
    if n:
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(DeviceError, match="no CUDA device"):
        image.tensor_view(t=0, z=0).to_cupy()


@pytest.mark.parametrize("how", ["to_cupy", "to_dlpack"])
def test_cupy_without_gpu_a_lazy_read_raises_device_error(tmp_path: Any, how: str) -> None:
    """The read asks CuPy for pinned memory before the export checks the device: that ask says it too."""
    cupy = pytest.importorskip("cupy")
    if device_count(cupy)[0]:
        pytest.skip("a CUDA GPU is present")
    host = np.random.default_rng(3).integers(0, 60000, size=(1, 2, 1, 512, 640), dtype=np.uint16)
    OMEArrow(host).export("parquet", tmp_path / "i.ome.parquet")
    view = OMEArrow.scan(tmp_path / "i.ome.parquet", registry=_registry()).tensor_view(t=0, z=0)  # 1.25 MiB
    with pytest.raises(DeviceError, match="no CUDA device"):
        view.to_cupy() if how == "to_cupy" else view.to_dlpack(device="cuda")


def test_cupy_without_gpu_streams_raise_device_error(image: OMEArrow) -> None:
    cupy = pytest.importorskip("cupy")
    if device_count(cupy)[0]:
        pytest.skip("a CUDA GPU is present")
    tiles = image.tensor_view(t=0, z=0).iter_dlpack(device="cuda", tile_size=(16, 16))  # a group: export_many
    with pytest.raises(DeviceError, match="no CUDA device"):
        next(iter(tiles))


VIEWS: dict[str, dict[str, Any]] = {
    "TZCYX": {},
    "CYX one plane": {"t": 1, "z": 2},
    "YXC strided": {"t": 0, "z": 1, "layout": "YXC"},
    "roi": {"t": 0, "z": 3, "roi": (5, 7, 20, 11)},
    "gathered channels": {"c": [2, 0], "z": slice(0, 4, 2)},
    "ZCYX roi3d": {"t": 1, "roi3d": (3, 4, 1, 17, 9, 2), "layout": "ZCYX"},
    "HWC": {"t": 1, "z": 0, "layout": "HWC"},
}


def _assert_same(cp: Any, got: Any, view: TensorView) -> None:
    assert isinstance(got, cp.ndarray)
    assert got.shape == view.shape and got.dtype == view.dtype
    np.testing.assert_array_equal(cp.asnumpy(got), view.to_numpy())


@pytest.mark.parametrize("kwargs", VIEWS.values(), ids=VIEWS.keys())
def test_to_cupy_matches_the_view(cp: Any, image: OMEArrow, kwargs: dict[str, Any]) -> None:
    view = image.tensor_view(**kwargs)
    got = view.to_cupy()
    _assert_same(cp, got, view)
    assert got.device.id == 0 and got.flags.c_contiguous


@pytest.mark.parametrize("block_bytes", [64, 5000])
@pytest.mark.parametrize("kwargs", VIEWS.values(), ids=VIEWS.keys())
def test_to_cupy_in_many_blocks(
    cp: Any, image: OMEArrow, kwargs: dict[str, Any], block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ome_arrow_cupy import export

    monkeypatch.setattr(export, "BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(export, "BUFFERS", 2)
    view = image.tensor_view(**kwargs)
    _assert_same(cp, view.to_cupy(), view)


@PINNED_VIEWS
@pytest.mark.parametrize("how", ["to_dlpack", "to_cupy"])
def test_a_lazy_view_is_read_into_pinned_memory_and_copied_from_there(
    cp: Any, tmp_path: Any, kwargs: dict[str, Any], pinned: bool, as_is: bool, how: str
) -> None:
    import gc

    from ome_arrow_cupy import export

    img, host = scanned(tmp_path, _registry())
    view = img.tensor_view(**kwargs)
    got = cp.from_dlpack(view.to_dlpack(device="cuda")) if how == "to_dlpack" else view.to_cupy()
    read = view.to_numpy()  # the read the export made (collected once)
    assert export.is_pinned_host(read) is pinned and (pinned and read.flags.c_contiguous) is as_is
    np.testing.assert_array_equal(cp.asnumpy(got), read)
    np.testing.assert_array_equal(read, OMEArrow(host).tensor_view(**kwargs).to_numpy())
    start = read.ctypes.data
    del view, read
    gc.collect()
    assert export.PINNED.lookup(start, 1) is None  # the pinned block went back with the view


def test_reused_staging_serves_each_thread_its_own_pixels(cp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each calling thread reuses its pinned buffers and events from call to call: views of growing and shrinking
    sizes, exported by several threads at once, each arrive whole and unmixed."""
    from concurrent.futures import ThreadPoolExecutor

    from ome_arrow_cupy import export

    monkeypatch.setattr(export, "BLOCK_BYTES", 4096)  # many blocks per view: every buffer rotates
    monkeypatch.setattr(export, "SPLIT_BYTES", 1024)
    rng = np.random.default_rng(7)
    planes = [rng.integers(0, 60000, size=(1, 1, 1, side, side), dtype=np.uint16) for side in (40, 200, 8, 130)]
    views = [OMEArrow(p).tensor_view(t=0, z=0, c=0) for p in planes]

    def run(seed: int) -> None:
        for k in np.random.default_rng(seed).integers(0, len(views), 12):
            _assert_same(cp, views[k].to_cupy(), views[k])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(run, range(8)))


@pytest.mark.parametrize("lazy", [True, False], ids=["file", "in memory"])
def test_iter_dlpack_stacks_are_one_device_array_each(cp: Any, tmp_path: Any, lazy: bool) -> None:
    host = np.random.default_rng(5).integers(0, 60000, size=(2, 1, 64, 48), dtype=np.uint16)  # ZCYX
    OMEArrow(host, "ZCYX").export("parquet", tmp_path / "i.ome.parquet", chunk_shape=(1, 16, 16))
    img = OMEArrow.scan(tmp_path / "i.ome.parquet", registry=_registry()) if lazy else OMEArrow(host, "ZCYX")
    view = img.tensor_view(layout="ZYX")
    stacks = list(view.iter_dlpack(tile_size=16, stack=5, device="cuda", prefetch=1))
    assert [s.shape for s in stacks] == [(5, 2, 16, 16), (5, 2, 16, 16), (2, 2, 16, 16)]
    tiles = [host[:, 0, y : y + 16, x : x + 16] for y in range(0, 64, 16) for x in range(0, 48, 16)]
    for s in stacks:
        assert isinstance(s, cp.ndarray) and s.flags.c_contiguous and s.dtype == np.uint16
    np.testing.assert_array_equal(cp.asnumpy(cp.concatenate(stacks)), np.stack(tiles))


@pytest.mark.parametrize("dtype", SUPPORTED)
def test_to_cupy_keeps_every_dtype(cp: Any, registry: Registry, dtype: str) -> None:
    arr = (np.arange(3 * 5 * 7) % 2 if dtype == "bool" else np.arange(3 * 5 * 7) - 50).astype(dtype)
    view = OMEArrow(arr.reshape(3, 5, 7), registry=registry).tensor_view(layout="ZYX")
    _assert_same(cp, view.to_cupy(device="cuda:0"), view)


def test_to_dlpack_cuda_resolves_to_cupy(cp: Any, image: OMEArrow) -> None:
    view = image.tensor_view(t=0, z=1, roi=(1, 2, 30, 20))
    got = view.to_dlpack(device="cuda")
    _assert_same(cp, got, view)
    assert got.__dlpack_device__() == (2, 0)  # kDLCUDA, device 0


@pytest.mark.parametrize("prefetch", [0, 2])
def test_iter_dlpack_tiles_reassemble(cp: Any, image: OMEArrow, prefetch: int) -> None:
    view = image.tensor_view(t=1, z=2)  # CYX, 3 x 37 x 53
    out = np.zeros(view.shape, view.dtype)
    tiles = list(view.iter_dlpack(device="cuda", tile_size=(16, 20), prefetch=prefetch))
    corners = list(itertools.product(range(0, 37, 16), range(0, 53, 20)))
    assert len(tiles) == len(corners)
    for (y, x), tile in zip(corners, tiles):
        assert isinstance(tile, cp.ndarray)
        out[:, y : y + tile.shape[1], x : x + tile.shape[2]] = cp.asnumpy(tile)
    np.testing.assert_array_equal(out, view.to_numpy())


@pytest.mark.parametrize("split", [False, True], ids=["one run", "gather threads"])
@pytest.mark.parametrize("prefetch", [0, 2])
def test_iter_dlpack_groups_match_numpy_and_are_independent(
    cp: Any, tmp_path: Any, prefetch: int, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ome_arrow_cupy import export

    if split:
        monkeypatch.setattr(export, "SPLIT_BYTES", 1024)  # several runs a group, gathered by the threads
    rng = np.random.default_rng(3)
    host = rng.integers(0, 60000, size=(3, 1, 100, 90), dtype=np.uint16)  # ZCYX
    OMEArrow(host, "ZCYX").export("parquet", tmp_path / "i.ome.parquet", chunk_shape=(1, 32, 32))
    img = OMEArrow.scan(tmp_path / "i.ome.parquet", registry=_registry())
    corners = list(itertools.product(range(0, 100, 16), range(0, 90, 20)))
    for z in range(3):
        view = img.tensor_view(z=z, layout="YX")
        tiles = list(view.iter_dlpack(tile_size=(16, 20), device="cuda", prefetch=prefetch))
        assert len(tiles) == len(corners)
        want = [host[z, 0, y : y + 16, x : x + 20] for y, x in corners]
        for t, w in zip(tiles, want):
            assert isinstance(t, cp.ndarray) and t.flags.c_contiguous and t.dtype == np.uint16
            np.testing.assert_array_equal(cp.asnumpy(t), w)
        for t, w in zip(tiles, want):  # each tile its own bytes: writing one never reaches another
            t.set(np.ascontiguousarray(w ^ np.uint16(0x5A5A)))
        for t, w in zip(tiles, want):
            np.testing.assert_array_equal(cp.asnumpy(t), w ^ np.uint16(0x5A5A))


@pytest.mark.parametrize("dtype", SUPPORTED)
def test_iter_dlpack_groups_keep_every_dtype(cp: Any, registry: Registry, dtype: str) -> None:
    arr = (np.arange(2 * 21 * 13) % 2 if dtype == "bool" else np.arange(2 * 21 * 13) - 50).astype(dtype)
    view = OMEArrow(arr.reshape(2, 21, 13), registry=registry).tensor_view(layout="ZYX")
    tiles = list(view.iter_dlpack(tile_size=(8, 5), device="cuda"))
    corners = list(itertools.product(range(0, 21, 8), range(0, 13, 5)))
    for (y, x), t in zip(corners, tiles, strict=True):
        np.testing.assert_array_equal(cp.asnumpy(t), view.to_numpy()[:, y : y + 8, x : x + 5])


def test_export_on_a_non_default_current_stream(cp: Any, image: OMEArrow) -> None:
    view = image.tensor_view(layout="TZCYX")
    with cp.cuda.Stream(non_blocking=True) as s:
        got = view.to_cupy()
        host = cp.asnumpy(got, stream=s)
        s.synchronize()
    np.testing.assert_array_equal(host, view.to_numpy())


def test_missing_device_index_raises(cp: Any, image: OMEArrow) -> None:
    with pytest.raises(DeviceError, match="'cuda:99' does not exist"):
        image.tensor_view(t=0, z=0).to_cupy(device="cuda:99")


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_roi_crops_match(cp: Any, pixels: np.ndarray, registry: Registry, data: st.DataObject) -> None:
    image = OMEArrow(pixels, "TCZYX", registry=registry)
    x = data.draw(st.integers(0, 52))
    y = data.draw(st.integers(0, 36))
    w = data.draw(st.integers(1, 53 - x))
    h = data.draw(st.integers(1, 37 - y))
    layout = data.draw(st.sampled_from(["CYX", "YXC", "XYC"]))
    view = image.tensor_view(
        t=data.draw(st.integers(0, 1)), z=data.draw(st.integers(0, 3)), roi=(x, y, w, h), layout=layout
    )
    _assert_same(cp, view.to_cupy(), view)


def test_ingest_round_trip(cp: Any, pixels: np.ndarray, registry: Registry) -> None:
    gpu = cp.asarray(pixels)
    assert is_cupy_array(gpu) and not is_cupy_array(pixels)
    img = OMEArrow(gpu, "TCZYX", registry=registry)
    assert img.dtype == pixels.dtype
    np.testing.assert_array_equal(img.to_numpy(), OMEArrow(pixels, "TCZYX").to_numpy())
    back = img.tensor_view().to_cupy()
    np.testing.assert_array_equal(cp.asnumpy(back), img.to_numpy())


def test_ingest_strided_cupy_array(cp: Any, registry: Registry) -> None:
    host = np.arange(40 * 30, dtype=np.float32).reshape(40, 30)
    img = OMEArrow(cp.asarray(host)[::2, 1::3], registry=registry)
    np.testing.assert_array_equal(img.to_numpy()[0, 0, 0], host[::2, 1::3])


@pytest.mark.parametrize("dtype", ["float16", "complex64", "uint64"])
def test_ingest_unsupported_dtype(cp: Any, registry: Registry, dtype: str) -> None:
    with pytest.raises(DTypeError, match="uint16"):
        OMEArrow(cp.zeros((4, 4), dtype=dtype), registry=registry)


@pytest.mark.parametrize("dtype", ["float32", "int16", "uint8"])
def test_torch_reads_the_cupy_result(cp: Any, registry: Registry, dtype: str) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs torch with CUDA")
    host = (np.arange(2 * 9 * 11) - 40).astype(dtype).reshape(2, 9, 11)
    view = OMEArrow(host, "ZYX", registry=registry).tensor_view(layout="YXZ")
    t = torch.from_dlpack(view.to_cupy())
    assert t.device.type == "cuda" and tuple(t.shape) == view.shape
    np.testing.assert_array_equal(t.cpu().numpy(), view.to_numpy())
