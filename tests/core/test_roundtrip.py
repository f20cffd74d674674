"""Every dtype survives every storage path bit for bit; unsupported dtypes are refused clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ome_arrow_core import DTypeError, OMEArrow

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"]


def sample(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    shape = (2, 3, 2, 37, 29)  # TCZYX, odd sizes: chunk edges are partial
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = rng.normal(scale=1e3, size=shape).astype(dt)
        a.flat[:6] = [np.nan, np.inf, -np.inf, -0.0, np.finfo(dt).tiny / 2, np.finfo(dt).max]
        return a
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    info = np.iinfo(dt)
    a = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    a.flat[:2] = [info.min, info.max]
    return a


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_memory_and_record_exports(dtype: str) -> None:
    a = sample(dtype)
    img = OMEArrow(a)
    canonical = a.transpose(0, 2, 1, 3, 4)
    assert same_bits(canonical, img.to_numpy())
    assert same_bits(canonical, OMEArrow(img.export("dict")).to_numpy())
    scalar = img.export("scalar")
    assert isinstance(scalar, pa.StructScalar)
    assert same_bits(canonical, OMEArrow(scalar).to_numpy())
    assert same_bits(canonical, OMEArrow(pa.table({"img": img.export("arrow")})).to_numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", [{}, {"chunk_shape": (16, 16)}, {"compression": "zstd", "chunk_shape": (1, 8, 32)},
                                     {"compression": None, "rows_per_group": 4, "chunk_shape": (2, 16, 16)},
                                     {"layout": "record"}])
def test_parquet(dtype: str, options: dict[str, object], tmp_path: Path) -> None:
    a = sample(dtype)
    out = tmp_path / "x.ome.parquet"
    OMEArrow(a).export("parquet", out, **options)
    back = OMEArrow(out)
    assert same_bits(a.transpose(0, 2, 1, 3, 4), back.to_numpy())
    lazy = OMEArrow.scan(out).tensor_view(t=1, z=1, c=[2, 0], roi=(5, 9, 20, 17))
    assert same_bits(a[1, [2, 0], 1, 9:26, 5:25], lazy.to_numpy())


def test_metadata_round_trips(tmp_path: Path) -> None:
    from dataclasses import replace

    img = OMEArrow(np.zeros((2, 8, 8), np.uint16), dim_order="CYX")
    src = img.source
    src.meta = replace(src.meta, physical_size={"X": 0.65, "Y": 0.65, "Z": 2.0}, name="cells",
                       physical_unit={"X": "µm", "Y": "µm", "Z": "µm"})
    img.export("parquet", tmp_path / "m.ome.parquet")
    info = OMEArrow.scan(tmp_path / "m.ome.parquet").info()
    assert info["physical_size"] == {"X": 0.65, "Y": 0.65, "Z": 2.0}
    assert info["name"] == "cells" and info["channels"] == ["C0", "C1"]


@pytest.mark.parametrize("dtype", ["int64", "uint64", "float16", "complex64", "datetime64[s]"])
def test_unsupported_dtypes_are_refused(dtype: str) -> None:
    with pytest.raises(DTypeError, match="supported dtypes are uint8, int8, uint16"):
        OMEArrow(np.zeros((4, 4), dtype=dtype))


def test_explicit_cast_only_when_asked() -> None:
    img = OMEArrow(np.full((4, 4), 300, np.uint16))
    assert img.tensor_view().dtype == np.uint16
    view = img.tensor_view(dtype="float32")
    assert view.dtype == np.float32 and float(view.to_numpy().max()) == 300.0
