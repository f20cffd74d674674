"""Every public name of ome-arrow 0.1.0's modules exists in ome_arrow_core.compat, and the
functions added for it (slice_ome_arrow, open_lazy_plane_source, relationship_metadata) agree
with the reference except where the reference casts pixels or zero-fills missing planes."""

from __future__ import annotations

import importlib
import pkgutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ome_arrow_core.compat as compat
from ome_arrow_core.compat.ingest import open_lazy_plane_source
from ome_arrow_core.compat.shapes import relationship_metadata
from ome_arrow_core.compat.transform import slice_ome_arrow
from ome_arrow_core.errors import DamagedFileError

ome_arrow = pytest.importorskip("ome_arrow")

#: Names a reference module defines itself (not imported into it) that compat leaves out, and why.
_NOT_PROVIDED: dict[str, str] = {}


def _own_names(module: object) -> list[str]:
    name = module.__name__  # type: ignore[attr-defined]
    return [n for n in dir(module) if not n.startswith("_") and getattr(getattr(module, n), "__module__", None) == name]


def test_every_public_name_of_the_reference_package_is_in_compat() -> None:
    top = {n for n in dir(ome_arrow) if not n.startswith("_")}
    assert sorted(top - set(dir(compat))) == []
    missing = []
    for info in pkgutil.iter_modules(ome_arrow.__path__):
        if info.name.startswith("_"):
            continue
        ref = importlib.import_module(f"ome_arrow.{info.name}")
        ours = importlib.import_module(f"ome_arrow_core.compat.{info.name}")
        missing += [f"{info.name}.{n}" for n in _own_names(ref) if not hasattr(ours, n) and n not in _NOT_PROVIDED]
    assert missing == []


def test_relationship_metadata_is_the_reference_payload() -> None:
    assert relationship_metadata() == ome_arrow.shapes.relationship_metadata()


def _record(dtype: str, seed: int, chunked: bool) -> pa.StructScalar:
    rng = np.random.default_rng(seed)
    shape = (2, 3, 2, 13, 17)  # TCZYX
    if np.dtype(dtype).kind == "f":
        pixels = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        pixels = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return compat.from_numpy(
        pixels,
        dim_order="TCZYX",
        channel_names=["dapi", "gfp", "rfp"],
        physical_size_x=0.25,
        physical_size_y=0.5,
        chunk_shape=(1, 8, 8),
        build_chunks=chunked,
    )


_bounds = st.tuples(st.integers(0, 16), st.integers(1, 17), st.integers(0, 12), st.integers(1, 13)).filter(
    lambda b: b[0] < b[1] and b[2] < b[3]
)
_indices = st.none() | st.lists(st.integers(-1, 4), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bounds=_bounds, t=_indices, c=_indices, z=_indices, chunked=st.booleans())
def test_slice_ome_arrow_matches_the_reference_on_uint16(
    bounds: tuple[int, int, int, int], t: list[int] | None, c: list[int] | None, z: list[int] | None, chunked: bool
) -> None:
    rec = _record("uint16", 1, chunked)
    x0, x1, y0, y1 = bounds
    keep = [t, c, z]
    sizes = (2, 3, 2)
    if any(k is not None and not [i for i in k if 0 <= i < n] for k, n in zip(keep, sizes)):
        for fn in (slice_ome_arrow, ome_arrow.transform.slice_ome_arrow):
            with pytest.raises(ValueError):
                fn(rec, x0, x1, y0, y1, t_indices=t, c_indices=c, z_indices=z)
        return
    ours = slice_ome_arrow(rec, x0, x1, y0, y1, t_indices=t, c_indices=c, z_indices=z)
    ref = ome_arrow.transform.slice_ome_arrow(rec, x0, x1, y0, y1, t_indices=t, c_indices=c, z_indices=z)
    assert ours.type.equals(ref.type)
    assert np.array_equal(compat.to_numpy(ours), ome_arrow.to_numpy(ref))
    a, b = ours.as_py(), ref.as_py()
    for key in ("id", "name", "image_type", "chunk_grid", "pixels_meta"):
        assert a[key] == b[key], key
    assert len(a["chunks"] or []) == len(b["chunks"] or [])
    planes = [sorted((p["t"], p["c"], p["z"]) for p in rec["planes"]) for rec in (a, b)]  # listed in other orders
    assert planes[0] == planes[1]


@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "int32", "uint8"])
def test_slice_ome_arrow_keeps_every_dtype_bit_for_bit(dtype: str) -> None:
    rec = _record(dtype, 2, True)
    full = compat.to_numpy(rec)
    out = slice_ome_arrow(rec, 2, 11, 3, 9, t_indices=[1], c_indices=[2, 0], z_indices=[1])
    got = compat.to_numpy(out)
    assert got.dtype == np.dtype(dtype)
    assert got.tobytes() == np.ascontiguousarray(full[[1]][:, [0, 2]][:, :, [1], 3:9, 2:11]).tobytes()
    assert [ch["name"] for ch in out.as_py()["pixels_meta"]["channels"]] == ["dapi", "rfp"]


@pytest.mark.parametrize("bounds", [(0, 18, 0, 5), (5, 5, 0, 5), (-1, 4, 0, 5), (0, 4, 3, 14)])
def test_slice_ome_arrow_refuses_bounds_outside_the_image(bounds: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match="crop bounds out of range"):
        slice_ome_arrow(_record("uint16", 3, False), *bounds)


def test_slice_ome_arrow_raises_on_a_record_missing_planes() -> None:
    """The reference zero-fills a missing plane; we raise (a read returns the stored pixels or raises)."""
    row = _record("uint16", 4, False).as_py()
    row["planes"] = row["planes"][1:]
    with pytest.raises(DamagedFileError, match="planes"):
        slice_ome_arrow(row, 0, 4, 0, 4)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_open_lazy_plane_source_reads_tiff_planes_lazily(tmp_path: Path, dtype: str) -> None:
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(5)
    pixels = (rng.random((2, 3, 4, 20, 30)) * 1000).astype(dtype)  # TZCYX
    path = tmp_path / "x.ome.tif"
    tifffile.imwrite(path, pixels, metadata={"axes": "TZCYX"}, ome=True)
    opened = open_lazy_plane_source(str(path))
    assert opened is not None
    meta, load = opened
    expected_meta = {"size_t": 2, "size_z": 3, "size_c": 4, "size_y": 20, "size_x": 30, "dimension_order": "XYZCT"}
    assert {k: meta[k] for k in expected_meta} == expected_meta
    assert meta["type"] == ("uint16" if dtype == "uint16" else "float")
    assert meta["physical_size_x"] is None and meta["physical_size_unit"] is None
    plane = load(1, 2, 3)
    assert plane.dtype == np.dtype(dtype) and np.array_equal(plane, pixels[1, 2, 3])
    if dtype == "uint16":  # the reference casts other dtypes to uint16
        with warnings.catch_warnings():  # bioio's readers warn; the suite turns warnings into errors
            warnings.simplefilter("ignore")
            ref_meta, ref_load = ome_arrow.ingest.open_lazy_plane_source(str(path))
            ref_plane = ref_load(1, 2, 3)
        assert ref_meta == meta
        assert np.array_equal(ref_plane, plane)


@pytest.mark.parametrize("path", ["plate.ome.parquet", "image.vortex", "x.npy", "notes.txt"])
def test_open_lazy_plane_source_is_none_for_other_sources(path: str) -> None:
    assert open_lazy_plane_source(path) is None
    assert ome_arrow.ingest.open_lazy_plane_source(path) is None
