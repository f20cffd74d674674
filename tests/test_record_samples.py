"""OME-Arrow records whose pixel lists hold 3 or 4 interleaved samples per pixel while claiming one
channel (CytoDataFrame composite columns) decode as channels R, G, B[, A], bit-exact, with a note;
any other mismatch between the values a record holds and its sizes stays a DamagedFileError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.plugin_api import SAMPLES_NOTE, DamagedFileError
from ome_arrow_core.record import ome_arrow_struct


def header(size_t: int, size_z: int, y: int, x: int, dtype: str = "uint8") -> dict[str, Any]:
    return {
        "type": "ome.arrow",
        "version": "0.1.0",
        "id": "composite",
        "name": "cells",
        "image_type": "image",
        "acquisition_datetime": None,
        "pixels_meta": {
            "dimension_order": "XYCZT",
            "type": dtype,
            "size_x": x,
            "size_y": y,
            "size_z": size_z,
            "size_c": 1,
            "size_t": size_t,
            "channels": [{"id": "ch-0", "name": "composite"}],
        },
        "chunk_grid": None,
        "chunks": [],
        "masks": None,
    }


def composite_table(path: Path, yxs: np.ndarray, *, chunked: bool = False, extra: int = 0) -> Path:
    """A CytoDataFrame-like table: an id column and one record column of (T, Z, Y, X, S) interleaved pixels,
    one plane (or one chunk) per (t, z); ``extra`` values appended to the last plane's list."""
    T, Z, Y, X, _ = yxs.shape
    rec = header(T, Z, Y, X, yxs.dtype.name)
    items = []
    for t in range(T):
        for z in range(Z):
            values = yxs[t, z].reshape(-1).tolist()
            if chunked:
                items.append(
                    {"t": t, "c": 0, "z": z, "y": 0, "x": 0, "shape_z": 1, "shape_y": Y, "shape_x": X, "pixels": values}
                )
            else:
                items.append({"z": z, "t": t, "c": 0, "pixels": values})
    items[-1]["pixels"] = items[-1]["pixels"] + [0] * extra
    rec["chunks" if chunked else "planes"] = items
    if chunked:
        rec["planes"] = []
    struct = ome_arrow_struct(pa.from_numpy_dtype(yxs.dtype))
    pq.write_table(pa.table({"Metadata_ObjectNumber": [7], "Image_composite": pa.array([rec], type=struct)}), path)
    return path


def tzcyx(yxs: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(yxs.transpose(0, 1, 4, 2, 3))


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("samples", [3, 4])
def test_interleaved_samples_decode_as_channels(tmp_path: Path, samples: int, chunked: bool) -> None:
    yxs = np.random.default_rng(samples).integers(0, 256, (2, 3, 5, 7, samples), dtype=np.uint8)
    path = composite_table(tmp_path / "cells.parquet", yxs, chunked=chunked)
    img = OMEArrow.scan(path)
    assert img.shape == (2, samples, 3, 5, 7)  # known before any pixel is read
    assert [c.name for c in img.meta.channels] == list("RGBA"[:samples])
    assert img.info()["notes"] == [SAMPLES_NOTE]
    got = img.to_numpy(layout="TZCYX")
    assert got.dtype == np.uint8 and got.tobytes() == tzcyx(yxs).tobytes()
    np.testing.assert_array_equal(
        img.slice_lazy(2, 6, 1, 4, c_indices=[1]).to_numpy(layout="TZCYX"), got[:, :, [1], 1:4, 2:6]
    )
    eager = OMEArrow(pq.read_table(path))  # an in-memory table decodes the same way
    assert eager.meta.sizes["C"] == samples and eager.to_numpy(layout="TZCYX").tobytes() == got.tobytes()


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 2),
    st.integers(1, 2),
    st.integers(1, 9),
    st.integers(1, 9),
    st.sampled_from([3, 4]),
    st.sampled_from(["uint8", "uint16", "float32"]),
)
def test_any_composite_round_trips_bit_exact(
    tmp_path_factory: pytest.TempPathFactory, t: int, z: int, y: int, x: int, samples: int, dtype: str
) -> None:
    rng = np.random.default_rng(y * 31 + x)
    yxs = rng.integers(0, 200, (t, z, y, x, samples)).astype(dtype)
    path = composite_table(tmp_path_factory.mktemp("c") / "c.parquet", yxs)
    img = OMEArrow(path)
    assert img.to_numpy(layout="TZCYX").tobytes() == tzcyx(yxs).tobytes()
    img.export("parquet", path.with_name("again.ome.parquet"))  # written back as true channels
    again = OMEArrow(path.with_name("again.ome.parquet"))
    assert again.to_numpy(layout="TZCYX").tobytes() == tzcyx(yxs).tobytes() and "notes" not in again.info()


def test_a_plain_one_channel_record_has_no_note(tmp_path: Path) -> None:
    img = OMEArrow(np.zeros((4, 6), np.uint8))
    img.export("parquet", tmp_path / "g.parquet", layout="record")
    got = OMEArrow(tmp_path / "g.parquet")
    assert got.meta.sizes["C"] == 1 and "notes" not in got.info()


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize(("samples", "extra"), [(2, 0), (5, 0), (3, 1), (3, -1)])
def test_other_mismatches_are_still_damaged(tmp_path: Path, samples: int, extra: int, chunked: bool) -> None:
    yxs = np.ones((1, 2, 4, 4, samples), np.uint8)
    if extra < 0:  # one plane lies: it holds one value per pixel, the other three
        rec_path = composite_table(tmp_path / "lie.parquet", yxs, chunked=chunked)
        table = pq.read_table(rec_path)
        rec = table.column("Image_composite")[0].as_py()
        key = "chunks" if chunked else "planes"
        rec[key][0]["pixels"] = rec[key][0]["pixels"][::samples]
        pq.write_table(pa.table({"Image_composite": pa.array([rec], type=table.schema.field(1).type)}), rec_path)
    else:
        rec_path = composite_table(tmp_path / "lie.parquet", yxs, chunked=chunked, extra=extra)
    with pytest.raises(DamagedFileError, match=r"lie\.parquet"):
        OMEArrow.scan(rec_path).to_numpy()


def test_a_record_claiming_several_channels_is_not_reinterpreted(tmp_path: Path) -> None:
    yxs = np.ones((1, 1, 4, 4, 3), np.uint8)
    path = composite_table(tmp_path / "c2.parquet", yxs)
    table = pq.read_table(path)
    rec = table.column("Image_composite")[0].as_py()
    rec["pixels_meta"]["size_c"] = 3  # three channels claimed, one plane of three values per pixel: damaged
    pq.write_table(pa.table({"Image_composite": pa.array([rec], type=table.schema.field(1).type)}), path)
    with pytest.raises(DamagedFileError, match=r"c2\.parquet"):
        OMEArrow.scan(path).to_numpy()
