"""Damaged struct records: planes and chunks must write every pixel once, payloads be exactly their shape.

Errors name the file, the row and the column (and the plane or chunk); nothing is read from
memory a record did not write. Also: scanning our own one-row record files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ome_arrow_core import OMEArrow, OMEArrowDataset
from ome_arrow_core.errors import DamagedFileError

A = np.arange(2 * 4 * 6, dtype=np.uint16).reshape(1, 1, 2, 4, 6) + 1000  # TCZYX: 2 planes of 4 x 6


def _planes() -> dict[str, Any]:
    rec: dict[str, Any] = OMEArrow(A).export("dict")
    return rec


def _chunks(typed: bool) -> dict[str, Any]:
    """The same image as 4 chunks (z, then two halves of x), as lists or typed bytes."""
    rec = _planes()
    chunks = []
    for z in range(2):
        for x in (0, 3):
            block = A[0, 0, z, :, x : x + 3]
            chunk: dict[str, Any] = {"t": 0, "c": 0, "z": z, "y": 0, "x": x, "shape_z": 1, "shape_y": 4, "shape_x": 3}
            if typed:
                chunk.update(pixel_bytes=block.astype("<u2").tobytes(), dtype="uint16", compression=None)
            else:
                chunk["pixels"] = block.reshape(-1).tolist()
            chunks.append(chunk)
    rec["chunks"], rec["planes"] = chunks, []
    return rec


def _file(tmp_path: Path, *records: dict[str, Any], name: str = "r.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.table({"image": pa.array(list(records))}), path)
    return path


def _refused(path: Path, row: int, *words: str) -> str:
    """Reading record ``row`` of ``path`` raises DamagedFileError naming the file, row, column and ``words``."""
    with pytest.raises(DamagedFileError) as err:
        OMEArrowDataset.scan(path)[row].to_numpy()
    message = str(err.value)
    assert f"{path} row {row} column 'image'" in message
    for word in words:
        assert word in message
    return message


@pytest.mark.parametrize("make", [_planes, lambda: _chunks(False), lambda: _chunks(True)])
def test_intact_records_read_back(tmp_path: Path, make: Any) -> None:
    path = _file(tmp_path, make(), make())
    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[1].to_numpy(), A)


def test_a_repeated_plane_is_refused(tmp_path: Path) -> None:
    bad = _planes()
    bad["planes"] = [*bad["planes"], bad["planes"][1]]
    bad["planes"][2] = {**bad["planes"][2], "pixels": [7] * 24}
    message = _refused(_file(tmp_path, _planes(), bad), 1, "planes")
    assert "written by 2 planes" in message


def test_planes_of_the_wrong_length_are_refused_even_when_the_total_agrees(tmp_path: Path) -> None:
    bad = _planes()
    first, second = bad["planes"]
    bad["planes"] = [{**first, "pixels": [*first["pixels"], 1]}, {**second, "pixels": second["pixels"][:-1]}]
    assert "planes[0].pixels holds 25 values" in _refused(_file(tmp_path, bad), 0)


def test_a_plane_outside_the_image_is_refused(tmp_path: Path) -> None:
    bad = _planes()
    bad["planes"][1] = {**bad["planes"][1], "z": 2}
    _refused(_file(tmp_path, bad), 0, "z outside 0..1")


@pytest.mark.parametrize("typed", [False, True])
def test_a_repeated_chunk_is_refused(tmp_path: Path, typed: bool) -> None:
    bad = _chunks(typed)
    bad["chunks"][3] = {**bad["chunks"][3], "x": 0}  # on top of chunk 2: the right half of z=1 is a hole
    assert "no chunk holds the pixel at t=0, c=0, z=1, y=0, x=3" in _refused(_file(tmp_path, bad), 0, "chunks")


@pytest.mark.parametrize("typed", [False, True])
def test_overlapping_chunks_are_refused(tmp_path: Path, typed: bool) -> None:
    bad = _chunks(typed)
    bad["chunks"].append(bad["chunks"][0])
    _refused(_file(tmp_path, bad), 0, "chunks")


@pytest.mark.parametrize("typed", [False, True])
def test_a_chunk_outside_the_image_is_refused(tmp_path: Path, typed: bool) -> None:
    bad = _chunks(typed)
    bad["chunks"][1] = {**bad["chunks"][1], "x": 4}
    assert "lies outside the image" in _refused(_file(tmp_path, bad), 0, "chunk 1")


def test_a_chunk_of_zero_extent_is_refused(tmp_path: Path) -> None:
    bad = _chunks(True)
    bad["chunks"][0] = {**bad["chunks"][0], "shape_y": 0}
    # the size check (before allocating) or the coverage check refuses it, naming the chunk
    message = _refused(_file(tmp_path, bad), 0)
    assert "every extent must be at least 1" in message
    bad["chunks"][0] = {**bad["chunks"][0], "shape_y": -4, "shape_z": -1}  # a negative volume would balance the sum
    bad["chunks"].append({**bad["chunks"][1], "z": 0, "x": 0, "shape_z": 1})
    assert "every extent must be at least 1" in _refused(_file(tmp_path, bad), 0)


def test_an_oversized_byte_payload_is_refused(tmp_path: Path) -> None:
    bad = _chunks(True)
    bad["chunks"][2] = {**bad["chunks"][2], "pixel_bytes": bad["chunks"][2]["pixel_bytes"] + b"\x00\x00"}
    assert "chunk 2 of the record holds 26 bytes, its shape and dtype need 24" in _refused(_file(tmp_path, bad), 0)


def test_a_short_list_payload_is_refused(tmp_path: Path) -> None:
    bad = _chunks(False)
    bad["chunks"][1] = {**bad["chunks"][1], "pixels": bad["chunks"][1]["pixels"][:-1]}
    assert "chunk 1 of the record holds 11 values, its shape says 12" in _refused(_file(tmp_path, bad), 0)


def test_a_damaged_row_is_named_and_the_others_still_read(tmp_path: Path) -> None:
    bad = _planes()
    bad["planes"] = bad["planes"][:1] + bad["planes"][:1]
    path = _file(tmp_path, _planes(), bad, _planes())
    _refused(path, 1, "record has 2 planes but none for t=0, z=1, c=0")
    ds = OMEArrowDataset.scan(path)
    np.testing.assert_array_equal(ds[2].to_numpy(), A)


def test_a_hole_never_shows_an_earlier_read(tmp_path: Path) -> None:
    bright = OMEArrow(np.full((1, 1, 2, 4, 6), 0xBEEF, np.uint16)).export("dict")
    good = _file(tmp_path, bright, name="bright.parquet")
    bad = _chunks(True)
    bad["chunks"][3] = {**bad["chunks"][3], "x": 0}
    damaged = _file(tmp_path, bad, name="damaged.parquet")
    for _ in range(3):
        assert (OMEArrowDataset.scan(good)[0].to_numpy() == 0xBEEF).all()
        with pytest.raises(DamagedFileError):
            OMEArrowDataset.scan(damaged)[0].to_numpy()
        with pytest.raises(DamagedFileError):
            OMEArrow(bad)


# -- scanning record files ------------------------------------------------------------------------
def test_scan_of_a_one_row_record_file_is_one_image(tmp_path: Path) -> None:
    """What export("parquet", path, layout="record") writes: one record, no metadata columns."""
    img = OMEArrow(A)
    path = img.export("parquet", tmp_path / "one.parquet", layout="record")
    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 1 and ds.table.column("image_id").to_pylist() == ["one.parquet"]
    np.testing.assert_array_equal(ds[0].to_numpy(), img.to_numpy())
    np.testing.assert_array_equal(ds.read()[0], img.tensor_view().to_numpy())
    assert len(OMEArrowDataset.scan(tmp_path)) == 1  # a directory holding it: the same image


def test_scan_of_several_records_without_metadata_names_each(tmp_path: Path) -> None:
    path = _file(tmp_path, _planes(), _chunks(True))
    ds = OMEArrowDataset.scan(path)
    assert ds.table.column("image_id").to_pylist() == ["r.parquet#0", "r.parquet#1"]
    assert ds.extra_columns == []
    np.testing.assert_array_equal(ds.read(layout="TZCYX"), np.stack([A.transpose(0, 2, 1, 3, 4)] * 2))
    assert len(OMEArrowDataset.scan(path, filter={"image_id": "r.parquet#1"})) == 1
