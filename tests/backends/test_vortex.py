"""Tests of the Vortex backend (ome-arrow-vortex) against the real vortex-data library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

vx = pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

import pyarrow as pa  # noqa: E402
import xxhash  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from vortex_plates import same_bits  # noqa: E402

from ome_arrow_core import (  # noqa: E402
    FormatVersionError,
    LayoutError,
    OMEArrow,
    SchemaError,
    Selection,
)
from ome_arrow_core.buffers import arrow_base  # noqa: E402
from ome_arrow_core.errors import ArgumentError  # noqa: E402
from ome_arrow_core.testing import check_reader  # noqa: E402
from ome_arrow_vortex import FORMAT_VERSION, writer  # noqa: E402

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"]


def random_pixels(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Random bit patterns of ``dtype`` (NaN payloads, -0.0, inf... included for floats)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    arr = np.frombuffer(rng.bytes(n * dt.itemsize), dtype=dt).reshape(shape).copy()
    if dt.kind == "f":
        u = arr.reshape(-1).view(f"u{dt.itemsize}")
        specials = {
            4: [0x7FC00001, 0xFFC12345, 0x7F800001, 0x80000000, 0x7F800000, 0x00000001],
            8: [
                0x7FF8000000000001,
                0xFFF0DEADBEEF0001,
                0x7FF0000000000001,
                0x8000000000000000,
                0xFFF0000000000000,
                0x1,
            ],
        }[dt.itemsize]
        u[: len(specials)] = specials
    return arr


# -- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk_shape", [None, (7, 11)])
def test_round_trip_every_dtype_bit_for_bit(tmp_path: Path, dtype: str, chunk_shape: tuple[int, int] | None) -> None:
    arr = random_pixels((2, 3, 2, 19, 23), dtype)  # TCZYX
    img = OMEArrow(arr)
    out = img.export(how="vortex", out=tmp_path / "img.vortex", chunk_shape=chunk_shape)
    assert out == tmp_path / "img.vortex" and out.exists()
    check_reader(
        out, img.to_numpy(layout="TZCYX")
    )  # the plugin kit: dtype, shape, bits of every kind of selection, threads...
    back = OMEArrow(out)
    assert arrow_base(back.to_numpy()) is not None  # read into Arrow memory: zero-copy DLPack export


def test_float_specials_survive(tmp_path: Path) -> None:
    vals = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 1e-45], dtype=np.float32)
    bits = vals.view(np.uint32).copy()
    bits[0] = 0x7FC0BEEF  # a NaN with a payload
    arr = bits.view(np.float32).reshape(1, 6)
    OMEArrow(arr).export(how="vortex", out=tmp_path / "f.vortex")
    back = OMEArrow(tmp_path / "f.vortex").to_numpy().reshape(-1)
    assert back.view(np.uint32).tolist() == bits.tolist()
    assert np.signbit(back[1])


def test_default_chunk_shape(tmp_path: Path) -> None:
    small = OMEArrow(np.zeros((2, 512, 300), np.uint8))
    small.export(how="vortex", out=tmp_path / "s.vortex")
    src = OMEArrow.scan(tmp_path / "s.vortex")
    assert src.meta.chunk_shape == (1, 512, 300)
    assert src.info()["rows"] == 2  # one row per plane
    big = OMEArrow(random_pixels((600, 513), "uint16"))
    big.export(how="vortex", out=tmp_path / "b.vortex")
    info = OMEArrow.scan(tmp_path / "b.vortex").info()
    assert info["chunk_shape"] == [1, 512, 512]
    assert info["chunk_grid"] == [2, 2] and info["rows"] == 4
    assert np.array_equal(OMEArrow(tmp_path / "b.vortex").to_numpy(), big.to_numpy())


def test_file_layout_is_the_documented_one(tmp_path: Path) -> None:
    arr = random_pixels((2, 2, 5, 6), "int16")  # TCYX
    OMEArrow(arr).export(how="vortex", out=tmp_path / "l.vortex", chunk_shape=(3, 4))
    table = vx.open(str(tmp_path / "l.vortex")).to_arrow().read_all()
    assert table.column_names == ["t", "z", "c", "y", "x", "h", "w", "pixels", "meta", "checksum"]
    rows = list(zip(*(table.column(n).to_pylist() for n in "tzcyxhw")))
    assert rows == sorted(rows) and len(rows) == 2 * 2 * 2 * 2
    assert rows[:4] == [(0, 0, 0, 0, 0, 3, 4), (0, 0, 0, 0, 4, 3, 2), (0, 0, 0, 3, 0, 2, 4), (0, 0, 0, 3, 4, 2, 2)]
    t, _z, c, y, x, h, w = rows[3]
    raw = table.column("pixels")[3].as_py()
    assert np.array_equal(np.frombuffer(raw, "<i2").reshape(h, w), arr[t, c, y : y + h, x : x + w])
    assert table.column("checksum")[3].as_py() == xxhash.xxh3_64_intdigest(raw)  # XXH3-64 of the pixel bytes
    meta = table.column("meta").to_pylist()
    assert meta[1:] == [None] * (len(rows) - 1)
    doc = json.loads(meta[0])
    assert doc["format"] == FORMAT_VERSION == "ome-arrow-core.vortex/1"
    assert doc["chunk_shape"] == [3, 4] and doc["image"]["dtype"] == "int16"
    assert doc["checksum"] == "xxh3_64"


def test_metadata_round_trip(tmp_path: Path) -> None:
    rec = OMEArrow(np.arange(2 * 4 * 5, dtype=np.uint16).reshape(2, 4, 5), "CYX").export("dict")
    pm = rec["pixels_meta"]
    pm.update(
        physical_size_x=0.325,
        physical_size_y=0.5,
        physical_size_z=2.0,
        physical_size_x_unit="nm",
        physical_size_z_unit="mm",
    )
    pm["channels"] = [
        {
            "id": "ch-dapi",
            "name": "DAPI",
            "emission_um": 0.461,
            "excitation_um": 0.358,
            "illumination": "Epifluorescence",
            "color_rgba": 0x0000FFFF,
        },
        {
            "id": "ch-gfp",
            "name": "GFP",
            "emission_um": None,
            "excitation_um": None,
            "illumination": "Unknown",
            "color_rgba": None,
        },
    ]
    rec.update(name="cells", id="img-42")
    img = OMEArrow(rec)
    img.export(how="vortex", out=tmp_path / "m.vortex")
    meta = OMEArrow.scan(tmp_path / "m.vortex").meta
    assert meta.physical_size == {"X": 0.325, "Y": 0.5, "Z": 2.0}
    assert meta.physical_unit == {"X": "nm", "Y": "µm", "Z": "mm"}
    assert [c.name for c in meta.channels] == ["DAPI", "GFP"]
    assert meta.channels == img.meta.channels
    assert (meta.name, meta.id, meta.dtype) == ("cells", "img-42", np.dtype("uint16"))


# -- lazy reads -------------------------------------------------------------------------------
SHAPE = (2, 3, 3, 21, 26)  # TZCYX of the property-test image
CHUNK = (5, 7)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arr = random_pixels(SHAPE, "float32", seed=3)
    path = tmp_path_factory.mktemp("vortex") / "tiled.vortex"
    OMEArrow(arr, "TZCYX").export(how="vortex", out=path, chunk_shape=CHUNK)
    return path, arr


def index_spec(n: int) -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(),
        st.integers(-n, n - 1),
        st.builds(
            slice, st.none() | st.integers(0, n - 1), st.none() | st.integers(1, n), st.none() | st.sampled_from([1, 2])
        ),  # negative steps: see test_read_any_selection
        st.lists(st.integers(0, n - 1), min_size=1, max_size=4),
    )


def expected_crop(arr: np.ndarray, t: object, z: object, c: object, roi: tuple[int, int, int, int]) -> np.ndarray:
    out = arr
    for dim, spec in enumerate((t, z, c)):
        idx = np.arange(arr.shape[dim])
        if spec is None:
            sel = idx
        elif isinstance(spec, int):
            sel = idx[[spec]]
        elif isinstance(spec, slice):
            sel = idx[spec]
        else:
            sel = idx[list(spec)]
        out = np.take(out, sel, axis=dim)
    x, y, w, h = roi
    return out[..., y : y + h, x : x + w]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_scan_crops_equal_numpy_slicing(tiled: tuple[Path, np.ndarray], data: st.DataObject) -> None:
    path, arr = tiled
    t, z, c = (data.draw(index_spec(n), label=ax) for n, ax in zip(SHAPE[:3], "tzc"))
    if any(isinstance(s, slice) and not range(n)[s] for s, n in zip((t, z, c), SHAPE)):
        return  # an empty slice selects nothing (a SelectionError, tested in the core)
    y = data.draw(st.integers(0, SHAPE[3] - 1), label="y")
    x = data.draw(st.integers(0, SHAPE[4] - 1), label="x")
    h = data.draw(st.integers(1, SHAPE[3] - y), label="h")
    w = data.draw(st.integers(1, SHAPE[4] - x), label="w")
    want = expected_crop(arr, t, z, c, (x, y, w, h))
    lazy = OMEArrow.scan(path)
    view = lazy.tensor_view(t=t, z=z, c=c, roi=(x, y, w, h), layout="TZCYX")
    assert lazy._source.rows_read == 0  # nothing read before collecting
    got = view.to_numpy()
    assert same_bits(np.ascontiguousarray(got), want)
    # only the chunks the crop intersects were read, once per distinct plane
    n_tiles = len(range(y // CHUNK[0], (y + h - 1) // CHUNK[0] + 1)) * len(
        range(x // CHUNK[1], (x + w - 1) // CHUNK[1] + 1)
    )
    distinct = [
        len(set(np.arange(n)[[s] if isinstance(s, int) else (s if s is not None else slice(None))].tolist()))
        for n, s in zip(SHAPE[:3], (t, z, c))
    ]
    assert lazy._source.rows_read == n_tiles * int(np.prod(distinct))
    eager = OMEArrow(path).tensor_view(t=t, z=z, c=c, roi=(x, y, w, h), layout="TZCYX")
    assert same_bits(np.ascontiguousarray(eager.to_numpy()), want)


@pytest.mark.parametrize(
    "sel",
    [
        dict(t=range(1, -1, -1), z=(2, 0, 2), c=range(2, -1, -1), y=range(20, 2, -3), x=range(0, 26, 4)),
        dict(t=(1,), z=range(0, 3, 2), c=(1, 1), y=range(4, 16, 2), x=range(25, -1, -1)),
        dict(t=range(2), z=range(3), c=range(3), y=range(21), x=range(26)),
    ],
)
def test_read_any_selection(tiled: tuple[Path, np.ndarray], sel: dict[str, object]) -> None:
    """The reader serves any Selection: reversed, strided, repeated and gathered indices."""
    path, arr = tiled
    src = OMEArrow.scan(path)._source
    selection = Selection(**sel)  # type: ignore[arg-type]
    got = src.read(selection)
    want = arr[np.ix_(*(np.asarray(list(sel[a])) for a in "tzcyx"))]
    assert got.shape == selection.shape and same_bits(got, want)
    assert not got.flags.writeable


def test_lazy_reads_fetch_only_needed_rows(tiled: tuple[Path, np.ndarray]) -> None:
    path, arr = tiled
    img = OMEArrow.scan(path)
    src = img._source
    n_rows = src.describe()["rows"]
    assert n_rows == 2 * 3 * 3 * 5 * 4
    assert img.meta.shape == SHAPE and src.rows_read == 0  # metadata only at open
    view = img.tensor_view(t=1, z=2, c=0, roi=(8, 6, 5, 3))  # inside chunk (1, 1)
    assert src.rows_read == 0
    assert np.array_equal(view.to_numpy(), arr[1, 2, 0:1, 6:9, 8:13], equal_nan=True)
    assert src.rows_read == 1
    img.tensor_view(t=0, z=0, c=[2, 1], roi=(6, 4, 2, 2)).collect()  # crosses 4 chunks, 2 planes
    assert src.rows_read == 1 + 8
    img.tensor_view(t=0, z=1, c=1, tile=(4, 3)).collect()  # default tile = storage chunk
    assert src.rows_read == 1 + 8 + 1
    assert src.describe()["rows_read"] == 10
    full = OMEArrow.scan(path).collect()
    assert same_bits(full.to_numpy(layout="TZCYX"), arr)


def test_lazy_slices_compose(tiled: tuple[Path, np.ndarray]) -> None:
    path, arr = tiled
    img = OMEArrow.scan(path).slice_lazy(3, 20, 2, 18, t_indices=[1], c_indices=[2, 0])
    sub = img.slice_lazy(1, 9, 4, 9)
    assert same_bits(np.ascontiguousarray(sub.to_numpy(layout="TZCYX")), arr[1:2][:, :, [2, 0], 6:11, 4:12])


# -- writing ----------------------------------------------------------------------------------
def test_atomic_write_leaves_nothing_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.vortex"
    img = OMEArrow(random_pixels((4, 16, 16), "uint16"))
    real = writer.record_batches

    def failing(*args: object, **kw: object):  # one real batch, then a failure mid-stream
        gen = real(*args, **kw)
        yield next(gen)
        raise RuntimeError("boom mid-write")

    monkeypatch.setattr(writer, "record_batches", failing)
    with pytest.raises(Exception, match="boom mid-write"):
        img.export(how="vortex", out=target)
    assert os.listdir(tmp_path) == []
    target.write_bytes(b"previous contents")
    with pytest.raises(Exception, match="boom mid-write"):
        img.export(how="vortex", out=target)
    assert os.listdir(tmp_path) == ["a.vortex"] and target.read_bytes() == b"previous contents"
    monkeypatch.setattr(writer, "record_batches", real)
    img.export(how="vortex", out=target)
    assert np.array_equal(OMEArrow(target).to_numpy(), img.to_numpy())
    assert os.listdir(tmp_path) == ["a.vortex"]


def test_bad_chunk_shape(tmp_path: Path) -> None:
    img = OMEArrow(np.zeros((8, 8), np.uint8))
    for bad in [(0, 4), (4,), "ab", (2.5, 2), (2, 4, 4), (1, 2, 3, 4)]:
        with pytest.raises(LayoutError, match="chunk_shape"):
            img.export(how="vortex", out=tmp_path / "x.vortex", chunk_shape=bad)
    assert not (tmp_path / "x.vortex").exists()
    img.export(how="vortex", out=tmp_path / "x.vortex", chunk_shape=(100, 3))  # clipped to the plane
    assert OMEArrow.scan(tmp_path / "x.vortex").meta.chunk_shape == (1, 8, 3)
    img.export(how="vortex", out=tmp_path / "x.vortex", chunk_shape=(1, 4, 2))  # (z, y, x) with z = 1
    assert OMEArrow.scan(tmp_path / "x.vortex").meta.chunk_shape == (1, 4, 2)


def test_zstd_compression_option(tmp_path: Path) -> None:
    arr = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 7
    OMEArrow(arr).export(how="vortex", out=tmp_path / "z.vortex", compression="zstd", chunk_shape=(16, 16))
    OMEArrow(arr).export(how="vortex", out=tmp_path / "n.vortex", compression=None, chunk_shape=(16, 16))
    assert (tmp_path / "z.vortex").stat().st_size < (tmp_path / "n.vortex").stat().st_size
    assert np.array_equal(OMEArrow(tmp_path / "z.vortex").to_numpy()[0, 0, 0], arr)
    with pytest.raises(ArgumentError, match="compression=None or 'zstd'"):
        OMEArrow(arr).export(how="vortex", out=tmp_path / "l.vortex", compression="lz4")


# -- errors and discovery ---------------------------------------------------------------------
def test_non_ome_vortex_file_is_a_schema_error(tmp_path: Path) -> None:
    vx.io.write(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), str(tmp_path / "other.vortex"))
    with pytest.raises(SchemaError, match="not an OME-Arrow image.*lacks column"):
        OMEArrow(tmp_path / "other.vortex")
    cols = {n: pa.array([0], pa.int32()) for n in "tzcyxhw"}
    vx.io.write(pa.table({**cols, "pixels": ["text"], "meta": ["{}"]}), str(tmp_path / "text.vortex"))
    with pytest.raises(SchemaError, match="'pixels' must be binary"):
        OMEArrow(tmp_path / "text.vortex")
    (tmp_path / "junk.vortex").write_bytes(b"definitely not a vortex file")
    with pytest.raises(SchemaError, match="not a readable Vortex file"):
        OMEArrow.scan(tmp_path / "junk.vortex")


def _rewrite_meta(src: Path, dst: Path, edit) -> None:
    table = vx.open(str(src)).to_arrow().read_all()
    metas = table.column("meta").to_pylist()
    metas[0] = edit(metas[0])
    table = table.set_column(8, "meta", pa.array(metas, pa.string()))
    vx.io.write(table, str(dst))


def test_unknown_format_version_and_bad_metadata(tmp_path: Path) -> None:
    OMEArrow(np.ones((4, 4), np.uint8)).export(how="vortex", out=tmp_path / "ok.vortex")
    _rewrite_meta(
        tmp_path / "ok.vortex",
        tmp_path / "v2.vortex",
        lambda m: m.replace("ome-arrow-core.vortex/1", "ome-arrow-core.vortex/2"),
    )
    with pytest.raises(FormatVersionError, match="vortex/2"):
        OMEArrow.scan(tmp_path / "v2.vortex")
    _rewrite_meta(tmp_path / "ok.vortex", tmp_path / "bad.vortex", lambda m: "{not json")
    with pytest.raises(SchemaError, match="not JSON"):
        OMEArrow.scan(tmp_path / "bad.vortex")
    _rewrite_meta(tmp_path / "ok.vortex", tmp_path / "big.vortex", lambda m: m.replace('"Y": 4', '"Y": 40'))
    with pytest.raises(SchemaError, match="rows but its metadata"):
        OMEArrow.scan(tmp_path / "big.vortex")


def test_sniffing_and_row_argument(tmp_path: Path) -> None:
    OMEArrow(np.arange(12, dtype=np.int32).reshape(3, 4)).export(how="vortex", out=tmp_path / "i.vortex")
    os.replace(tmp_path / "i.vortex", tmp_path / "image.bin")
    assert OMEArrow(tmp_path / "image.bin").to_numpy().reshape(-1).tolist() == list(range(12))
    with pytest.raises(IndexError, match="row=1"):
        OMEArrow(tmp_path / "image.bin", row=1)


def test_plugin_does_not_import_vortex() -> None:
    code = (
        "import sys, ome_arrow_core as oc\n"
        "reg = oc.default_registry()\n"
        "assert 'vortex' in {p.plugin for p in oc.plugins()}, oc.plugins()\n"
        "assert [h for h in reg.writers() if 'vortex' in h.formats]\n"
        "assert 'vortex' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_info_describes_storage(tiled: tuple[Path, np.ndarray]) -> None:
    path, _ = tiled
    info = OMEArrow.scan(path).info()
    assert info["storage"] == "vortex" and info["format"] == FORMAT_VERSION
    assert info["chunk_shape"] == [1, *CHUNK] and info["chunk_grid"] == [5, 4]
    assert info["file_bytes"] == path.stat().st_size and info["lazy"] is True


def test_a_scanned_image_is_read_a_plane_at_a_time_while_written(tmp_path: Path) -> None:
    """The writer reads the image a block of planes at a time as Vortex takes its rows (Vortex itself then
    buffers the file: see write_vortex), not whole first: 2 x 16 planes of 256x256 here, blocks of one Z."""
    from conversion_memory import peak_read_bytes, scanned_source

    src, arr = scanned_source(tmp_path)
    small = "import ome_arrow_core.plane_blocks as p; p.BLOCK_BYTES = 1 << 18"  # blocks of one Z, not 32 MiB
    peak = peak_read_bytes(src, "vortex", tmp_path / "out.vortex", setup=small)
    assert peak < arr.nbytes // 8, (peak, arr.nbytes)
    assert np.array_equal(OMEArrow.scan(tmp_path / "out.vortex").to_numpy(), arr)


@pytest.mark.parametrize("memory_map", [True, False])
def test_a_vortex_image_and_its_views_pickle_and_read_in_another_process(tmp_path: Path, memory_map: bool) -> None:
    """A Vortex image did not pickle (its lock and vortex's open file): dask's processes scheduler, a spawned
    DataLoader worker or a Pool failed with "cannot pickle '_thread.lock' object". The worker opens the file again."""
    import multiprocessing
    import pickle

    a = np.arange(2 * 3 * 32 * 32, dtype=np.uint16).reshape(2, 3, 32, 32)
    path = OMEArrow(a, "CZYX").export("vortex", tmp_path / "x.vortex")
    img = OMEArrow.scan(path, memory_map=memory_map)
    view = img.tensor_view(c=1, z=2, roi=(3, 4, 20, 10), layout="YX")
    again = pickle.loads(pickle.dumps(img.source))
    assert again.memory_map is memory_map and again.meta == img.source.meta
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(np.asarray, (view,))
    np.testing.assert_array_equal(got, a[1, 2, 4:14, 3:23])
