"""Vortex files in ome-arrow 0.1.0's layout (a struct column, one OME-Arrow record a row): read by
``OMEArrow.scan`` as any image, and written by ``export("vortex", layout="record")`` for the reference to read.

The reference files here are written by the real ``ome-arrow`` 0.1.0 package, and what we write is read back by it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

from source_faults import damaged_source, temporaries

from ome_arrow_core import OMEArrow
from ome_arrow_core.dtypes import SUPPORTED
from ome_arrow_core.errors import ArgumentError, ChecksumError, DamagedFileError, SchemaError
from ome_arrow_core.record import pixels_to_record


def reference() -> object:
    return pytest.importorskip("ome_arrow", reason="needs the reference package ome-arrow 0.1.0")


def camera(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, shape, dtype=np.uint16)


def written_by_the_reference(path: Path, a: np.ndarray, **options: object) -> Path:
    ome_arrow = reference()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ome_arrow.OMEArrow(a, dim_order="TCZYX").export(how="vortex", out=str(path), **options)  # type: ignore[attr-defined]
    return path


def test_a_file_of_the_reference_opens_as_an_image(tmp_path: Path) -> None:
    a = camera((2, 3, 4, 20, 30))
    img = OMEArrow.scan(written_by_the_reference(tmp_path / "r.vortex", a))
    np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), a)
    info = img.info()
    assert info["shape"] == {"T": 2, "Z": 4, "C": 3, "Y": 20, "X": 30} and "0.1.0" in info["storage"]
    assert info["sealed"] is False  # the reference writes no seal: vortex read it in a child first (the probe)
    crop = img.tensor_view(t=1, z=2, roi=(5, 3, 10, 7)).to_numpy()
    np.testing.assert_array_equal(crop, a[1, :, 2, 3:10, 5:15])


def test_the_reference_s_to_ome_vortex_column_is_found_by_itself(tmp_path: Path) -> None:
    ome_arrow = reference()
    a = camera((1, 1, 1, 8, 9), seed=2)
    path = tmp_path / "image.vortex"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ome_arrow.to_ome_vortex(ome_arrow.from_numpy(a, dim_order="TCZYX"), str(path))  # type: ignore[attr-defined]
    img = OMEArrow.scan(path)
    assert img.info()["column"] == "image"
    np.testing.assert_array_equal(img.to_numpy(layout="TCZYX"), a)
    with pytest.raises(SchemaError, match="column 'pixels' not found; OME-Arrow columns here: \\['image'\\]"):
        OMEArrow.scan(path, column="pixels")


@pytest.mark.parametrize("shape", [(1, 1, 1, 16, 16), (2, 3, 4, 20, 30), (3, 1, 2, 1, 7)])
def test_the_reference_reads_what_we_write_as_a_record(tmp_path: Path, shape: tuple[int, ...]) -> None:
    ome_arrow = reference()
    a = camera(shape, seed=sum(shape))
    out = tmp_path / "ours.vortex"
    assert OMEArrow(a, "TCZYX").export("vortex", out, layout="record") == out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = np.asarray(ome_arrow.OMEArrow(str(out)).export(how="numpy"))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got, a)
    assert OMEArrow.scan(out).info()["sealed"] is True


@settings(max_examples=25, deadline=None)
@given(
    dtype=st.sampled_from(sorted(np.dtype(d).name for d in SUPPORTED)),
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 2), st.integers(1, 9), st.integers(1, 9)),
)
def test_every_dtype_survives_bit_for_bit(tmp_path_factory: pytest.TempPathFactory, dtype: str, shape: tuple) -> None:
    top = 2 if dtype == "bool" else 256  # (a bool byte is 0 or 1)
    raw = np.random.default_rng(sum(shape)).integers(0, top, (*shape, np.dtype(dtype).itemsize), dtype=np.uint8)
    a = raw.view(dtype).reshape(shape)  # any bit pattern: NaN payloads, -0.0, int8 extremes
    out = tmp_path_factory.mktemp("dt") / "x.vortex"
    OMEArrow(a, "TCZYX").export("vortex", out, layout="record")
    got = OMEArrow.scan(out).to_numpy(layout="TCZYX")
    assert got.dtype == a.dtype
    assert got.tobytes() == a.tobytes()


def several(path: Path, records: dict[str, list[pa.StructArray]]) -> Path:
    """A Vortex table of ``records`` columns, a record a row (as a CytoDataFrame table would hold them)."""
    import vortex as vx

    table = pa.table({name: pa.concat_arrays(rows) for name, rows in records.items()})
    vx.io.write(table, str(path))
    return path


def _record(a: np.ndarray) -> pa.StructArray:
    """The record of TCZYX pixels ``a`` (records hold TZCYX)."""
    return pixels_to_record(OMEArrow(a, "TCZYX").meta, a.transpose(0, 2, 1, 3, 4))


def test_rows_and_columns_of_a_table_of_records(tmp_path: Path) -> None:
    a, b = camera((1, 1, 1, 6, 7), seed=3), camera((1, 2, 1, 4, 5), seed=4)
    path = several(tmp_path / "t.vortex", {"left": [_record(a), _record(b)], "right": [_record(b), _record(a)]})
    with pytest.raises(SchemaError, match=r"several OME-Arrow columns \['left', 'right'\]; pick one with column="):
        OMEArrow.scan(path)
    np.testing.assert_array_equal(OMEArrow.scan(path, column="left", row=1).to_numpy(layout="TCZYX"), b)
    np.testing.assert_array_equal(OMEArrow.scan(path, column="right", row=1).to_numpy(layout="TCZYX"), a)
    with pytest.raises(ArgumentError, match=r"row 2 is out of range; .*t.vortex has rows 0..1"):
        OMEArrow.scan(path, column="left", row=2)


def test_a_dataset_scan_of_a_table_of_reference_records_has_every_row(tmp_path: Path) -> None:
    """OMEArrowDataset.scan of a Vortex table of the reference's records (one image a row) gave row 0 only."""
    ome_arrow = reference()
    arrays = [camera((1, 2, 1, 6, 7), seed=s) for s in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [ome_arrow.from_numpy(a, dim_order="TCZYX") for a in arrays]  # type: ignore[attr-defined]
    import vortex as vx

    struct = pa.array([r.as_py() for r in rows], type=rows[0].type)
    path = tmp_path / "plate.vortex"
    vx.io.write(pa.table({"img": struct, "well": ["A1", "A2", "A3"]}), str(path))
    OMEArrow(arrays[0], "TCZYX").export("vortex", tmp_path / "ours.vortex")  # ours (sealed): one image
    from ome_arrow_core import OMEArrowDataset

    ds = OMEArrowDataset.scan(path)
    assert len(ds) == 3 and ds.table.column("well").to_pylist() == ["A1", "A2", "A3"]
    for i in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = ome_arrow.OMEArrow(str(path), column_name="img", row_index=i).export(how="numpy")  # type: ignore[attr-defined]
        np.testing.assert_array_equal(ds[i].to_numpy(layout="TCZYX"), theirs)
        np.testing.assert_array_equal(theirs, arrays[i])
    np.testing.assert_array_equal(ds.filter({"well": "A2"})[0].to_numpy(layout="TCZYX"), arrays[1])
    assert len(OMEArrowDataset.scan(tmp_path)) == 4  # the table's three rows, then our one image


def test_a_dataset_scan_picks_one_of_several_record_columns(tmp_path: Path) -> None:
    """A Vortex table with an image and a mask column a row: ``column=`` lists the rows of the one asked for (the
    collection hook had no ``column=``, so such a table was one unopenable image); the other record column is not
    metadata; an unknown column is refused naming the file and the columns there are."""
    from ome_arrow_core import OMEArrowDataset

    images = [camera((1, 2, 1, 6, 7), seed=s) for s in range(3)]
    masks = [(a > 2048).astype(np.uint8) for a in images]
    path = several(
        tmp_path / "cells.vortex",
        {"image": [_record(a) for a in images], "mask": [_record(m) for m in masks]},
    )
    import vortex as vx

    table = vx.open(str(path), memory_map=False).to_arrow().read_all()
    vx.io.write(table.append_column("well", pa.array(["A1", "A2", "A3"])), str(tmp_path / "t.vortex"))
    path.unlink()
    path = tmp_path / "t.vortex"
    for column, truth in (("image", images), ("mask", masks)):
        ds = OMEArrowDataset.scan(path, column=column)
        assert len(ds) == 3 and ds.column_names == ["image_id", "path", "row", "well"]
        for i in range(3):
            got = ds[i].to_numpy(layout="TCZYX")
            assert got.dtype == truth[i].dtype and np.array_equal(got, truth[i])
        np.testing.assert_array_equal(ds.filter({"well": "A3"})[0].to_numpy(layout="TCZYX"), truth[2])
        np.testing.assert_array_equal(ds.read([2, 0])[1], truth[0][0, :, 0])  # CYX: one T, one Z
    with pytest.raises(SchemaError, match=r"t.vortex.*column 'nucleus'.*\['image', 'mask'\]"):
        OMEArrowDataset.scan(path, column="nucleus")[0].to_numpy()
    with pytest.raises(SchemaError, match=r"several OME-Arrow columns \['image', 'mask'\]; pick one with column="):
        OMEArrowDataset.scan(path)[0].to_numpy()


def test_a_record_whose_metadata_lies_is_a_damaged_file(tmp_path: Path) -> None:
    a = camera((1, 1, 1, 6, 7), seed=5)
    rec = _record(a)
    pm = rec.field("pixels_meta")
    lying_pm = pa.StructArray.from_arrays(
        [pa.array([8]).cast(pm.field(f.name).type) if f.name == "size_x" else pm.field(f.name) for f in pm.type],
        fields=list(pm.type),
    )
    lying = pa.StructArray.from_arrays(
        [lying_pm if f.name == "pixels_meta" else rec.field(f.name) for f in rec.type], fields=list(rec.type)
    )
    path = several(tmp_path / "lie.vortex", {"image": [lying]})
    with pytest.raises(DamagedFileError, match="lie.vortex"):
        OMEArrow.scan(path).to_numpy()


def _retyped(path: Path, ptype: str) -> Path:
    """The record Vortex file ``path`` rewritten with its record's ``pixels_meta.type`` set to ``ptype``."""
    import vortex as vx

    table = vx.open(str(path), memory_map=False).to_arrow().read_all()
    rows = table.to_pylist()
    rows[0][table.schema[0].name]["pixels_meta"]["type"] = ptype
    path.unlink()
    vx.io.write(pa.Table.from_pylist(rows, schema=table.schema), str(path))
    return path


@pytest.mark.parametrize(("stored", "declared"), [("uint16", "int16"), ("int16", "uint16"), ("int16", "uint32")])
def test_a_record_whose_type_changes_the_values_sign_is_a_damaged_file(
    tmp_path: Path, stored: str, declared: str
) -> None:
    """uint16 values over 32767 in a record declaring int16 read as negative numbers (and int16 ones below 0 as
    uint16 / uint32 as huge ones): the exact cast checked a round trip, which keeps the bits of a sign change."""
    a = np.array([0, 1, 40000, 65535] if stored == "uint16" else [0, -1, -32768, 5], dtype=stored).reshape(
        1, 1, 1, 2, 2
    )
    if stored == "uint16":  # the reference's own file (it writes uint16 pixels)
        path = written_by_the_reference(tmp_path / "r.vortex", a)
    else:
        path = several(tmp_path / "r.vortex", {"image": [_record(a)]})
    with pytest.raises(DamagedFileError, match=f"r.vortex.*do not fit the declared pixel type {declared}"):
        OMEArrow.scan(_retyped(path, declared)).to_numpy()
    fits = np.array([0, 1, 2, 3], dtype=stored).reshape(a.shape)  # values the declared type holds: read, as that type
    got = OMEArrow.scan(_retyped(several(tmp_path / "f.vortex", {"image": [_record(fits)]}), declared)).to_numpy(
        layout="TCZYX"
    )
    assert got.dtype == np.dtype(declared) and np.array_equal(got, fits)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_a_truncated_file_of_the_reference_is_refused(tmp_path: Path, cut: float) -> None:
    path = written_by_the_reference(tmp_path / "r.vortex", camera((1, 1, 2, 16, 16)))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DamagedFileError, match="r.vortex"):
        OMEArrow.scan(path).to_numpy()


def test_a_flipped_byte_in_a_record_we_wrote_fails_its_seal(tmp_path: Path) -> None:
    out = tmp_path / "ours.vortex"
    OMEArrow(camera((1, 1, 1, 32, 32)), "TCZYX").export("vortex", out, layout="record")
    data = bytearray(out.read_bytes())
    data[len(data) // 3] ^= 0x10
    out.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="ours.vortex"):
        OMEArrow.scan(out).to_numpy()


def test_record_options_are_checked(tmp_path: Path) -> None:
    img = OMEArrow(camera((1, 1, 1, 4, 4)), "TCZYX")
    with pytest.raises(ArgumentError, match="drop chunk_shape= and compression="):
        img.export("vortex", tmp_path / "a.vortex", layout="record", chunk_shape=(2, 2))
    with pytest.raises(ArgumentError, match="layout must be 'chunks' or 'record', got 'rows'"):
        img.export("vortex", tmp_path / "a.vortex", layout="rows")
    assert not list(tmp_path.iterdir())


def test_a_source_that_fails_leaves_the_old_record_file(tmp_path: Path) -> None:
    src, _ = damaged_source(tmp_path)
    target = tmp_path / "out.vortex"
    OMEArrow(camera((1, 1, 1, 4, 4)), "TCZYX").export("vortex", target, layout="record")
    before = target.read_bytes()
    with pytest.raises(DamagedFileError, match="source.ome.parquet"):
        OMEArrow.scan(src).export("vortex", target, layout="record")
    assert target.read_bytes() == before
    assert temporaries(tmp_path, target) == []


@pytest.mark.parametrize("how", ["replaced", "in-place"])
def test_a_vortex_table_of_records_written_again_is_a_changed_copy_for_planned_readers(
    tmp_path: Path, how: str
) -> None:
    """copies() left out plugins' collections: a torch dataset, dask array or Ray dataset over a Vortex table of
    records rewritten since it was made paired the new rows' pixels with the planned rows' metadata (image 30 with
    label 1), silently."""
    import errno
    import os

    import vortex as vx
    from dataset_plates import records_table

    from ome_arrow_core import OMEArrowDataset
    from ome_arrow_core.errors import StorageError

    path = tmp_path / "cells.vortex"
    vx.io.write(records_table([1, 2, 3]), str(path))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # written earlier: a rewrite now gets another time
    ds = OMEArrowDataset.scan(path)
    made = ds.copies()
    assert [p for p, _, _ in made] == [str(path)] and ds.table.column("label").to_pylist() == [1, 2, 3]
    if how == "replaced":
        vx.io.write(records_table([30, 10, 20]), str(tmp_path / "new.vortex"))
        os.replace(tmp_path / "new.vortex", path)
    else:
        path.write_bytes(_vortex_bytes(tmp_path / "new.vortex", [30, 10, 20]))
    with pytest.raises(StorageError, match=r"cells\.vortex was overwritten after this reader was made") as err:
        ds.check_copies(made, [0])
    assert err.value.errno == errno.ESTALE


def _vortex_bytes(path: Path, values: list[int]) -> bytes:
    import vortex as vx
    from dataset_plates import records_table

    vx.io.write(records_table(values), str(path))
    return path.read_bytes()
