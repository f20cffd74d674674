"""Clear errors for bad inputs and files, and nothing half-written when an export fails."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_digests import without_table_digests

from ome_arrow_core import (
    BackendUnavailableError,
    DeviceError,
    DTypeError,
    FormatVersionError,
    ImageMeta,
    LayoutError,
    OMEArrow,
    OMEArrowDataset,
    OMEArrowError,
    PluginError,
    Registry,
    SchemaError,
    SelectionError,
    Writer,
    hookimpl,
)
from ome_arrow_core.errors import ArgumentError, NotFoundError, StorageError
from ome_arrow_core.safe_write import atomic_path


def record(**changes: Any) -> dict[str, Any]:
    rec: dict[str, Any] = OMEArrow(np.arange(12, dtype=np.uint16).reshape(1, 3, 4)).export("dict")
    rec.update(changes)
    return rec


def listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_error_classes_are_also_builtin_errors() -> None:
    assert issubclass(SchemaError, ValueError) and issubclass(FormatVersionError, SchemaError)
    assert issubclass(DTypeError, TypeError) and issubclass(LayoutError, ValueError)
    assert issubclass(SelectionError, IndexError) and issubclass(PluginError, LookupError)
    assert issubclass(BackendUnavailableError, ImportError) and issubclass(BackendUnavailableError, PluginError)
    assert issubclass(DeviceError, ValueError)
    for cls in (SchemaError, DTypeError, LayoutError, SelectionError, PluginError, DeviceError):
        assert issubclass(cls, OMEArrowError)


def test_storage_errors_cross_processes_with_their_errno() -> None:
    """A StorageError raised in a worker (a DataLoader's, a Ray task's) reaches the parent pickled: OSError's own
    pickling kept the message and dropped ``errno``, so ESTALE (the data changed: scan again) arrived as None."""
    import errno
    import pickle

    for cls in (StorageError, NotFoundError):
        err = cls("plate.ome.parquet [chunks.parquet]: changed since this dataset was scanned")
        err.errno = errno.ESTALE
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is cls and back.errno == errno.ESTALE and str(back) == str(err)
    plain = pickle.loads(pickle.dumps(StorageError("no errno")))
    assert plain.errno is None and str(plain) == "no errno"


# -- files that are not OME-Arrow -------------------------------------------------------------
def test_plain_parquet_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), path)
    with pytest.raises(
        SchemaError,
        match=r"no OME-Arrow column found: expected a struct column with fields "
        r"\['pixels_meta', 'planes', 'type'\]; columns here are \['a', 'b'\]",
    ):
        OMEArrow(path)
    with pytest.raises(SchemaError, match=r"column 'a' is not an OME-Arrow record: expected a struct"):
        OMEArrow(path, column="a")


def test_struct_that_is_almost_a_record(tmp_path: Path) -> None:
    path = tmp_path / "almost.parquet"
    pq.write_table(pa.table({"img": pa.array([{"type": "ome.arrow", "planes": [1, 2]}])}), path)
    with pytest.raises(SchemaError, match="no OME-Arrow column found"):  # pixels_meta is missing
        OMEArrow(path)


def test_not_parquet_at_all(tmp_path: Path) -> None:
    (tmp_path / "junk.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(SchemaError, match="junk.parquet is not a readable Parquet file"):
        OMEArrow(tmp_path / "junk.parquet")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PluginError, match=r"no plugin handles path .*notes.txt.* \(unknown suffix\)"):
        OMEArrow(tmp_path / "notes.txt")
    with pytest.raises(NotFoundError, match="no such file or directory"):  # a FileNotFoundError too
        OMEArrow(tmp_path / "missing.ome.parquet")


def test_directories_without_a_dataset(tmp_path: Path) -> None:
    empty = tmp_path / "empty.ome.parquet"
    empty.mkdir()
    with pytest.raises(
        SchemaError,
        match="is a directory but not an OME-Arrow dataset: expected "
        "_ome_arrow_dataset.json, images.parquet and chunks.parquet inside",
    ):
        OMEArrow(empty)
    half = tmp_path / "half.ome.parquet"
    OMEArrow(np.zeros((4, 4), np.uint8)).export("parquet", half)
    (half / "images.parquet").unlink()
    with pytest.raises(SchemaError, match="is not an OME-Arrow dataset: images.parquet is missing"):
        OMEArrow.scan(half)


def test_the_chunks_file_alone_points_at_its_directory(tmp_path: Path) -> None:
    out = tmp_path / "d.ome.parquet"
    OMEArrow(np.zeros((4, 4), np.uint8)).export("parquet", out)
    with pytest.raises(SchemaError, match="is the chunks file of an OME-Arrow dataset; open its directory"):
        OMEArrow(out / "chunks.parquet")


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "v.ome.parquet"
    OMEArrow(np.zeros((4, 4), np.uint8)).export("parquet", out)
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    manifest["ome_arrow_core"]["format_version"] = 99
    (out / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    with pytest.raises(
        FormatVersionError, match="format 99; this reader knows up to 2. Upgrade: pip install -U ome-arrow-core"
    ):
        OMEArrow(out)


def test_damaged_chunks_are_reported(tmp_path: Path) -> None:
    out = tmp_path / "d.ome.parquet"
    OMEArrow(np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8), "CYX").export("parquet", out)
    table = pq.read_table(out / "chunks.parquet")
    blobs = table.column("pixel_bytes").to_pylist()
    blobs[1] = blobs[1][:10]
    table = table.set_column(
        table.schema.get_field_index("pixel_bytes"), "pixel_bytes", pa.array(blobs, pa.large_binary())
    )
    pq.write_table(table, out / "chunks.parquet", row_group_size=1)
    img = OMEArrow.scan(out)
    np.testing.assert_array_equal(img.tensor_view(c=0, layout="YX").to_numpy(), np.arange(64).reshape(8, 8))
    with pytest.raises(SchemaError, match=r"holds 10 bytes"):
        img.tensor_view(c=1, layout="YX").to_numpy()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"pixels_meta": None}, "no pixels_meta struct"),
        ({"planes": []}, "no planes and no chunks: there are no pixels"),
    ],
)
def test_bad_records(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        OMEArrow(record(**changes))


def test_bad_record_planes_and_sizes() -> None:
    rec = record()
    rec["pixels_meta"] = {**rec["pixels_meta"], "size_x": None}
    with pytest.raises(SchemaError, match=r"pixels_meta lacks required fields \['size_x'\]"):
        OMEArrow(rec)
    rec = record()
    rec["pixels_meta"] = {**rec["pixels_meta"], "size_t": 2}  # one plane for T=2
    with pytest.raises(
        SchemaError, match=r"record has 1 planes but none for t=1, z=0, c=0; expected all 2 \(T\*Z\*C\)"
    ):
        OMEArrow(rec)
    rec = record()
    rec["planes"] = [{**rec["planes"][0], "c": 5}]
    with pytest.raises(SchemaError, match=r"a plane has c outside 0..0"):
        OMEArrow(rec)
    rec = record()
    rec["planes"] = [{**rec["planes"][0], "pixels": rec["planes"][0]["pixels"][:5]}]
    with pytest.raises(SchemaError, match=r"planes hold 5 values; expected 1 planes of 3x4"):
        OMEArrow(rec)


def test_missing_planes_are_refused_not_read_as_stale_memory() -> None:
    rec = OMEArrow(np.full((2, 30, 40), 7, np.uint16), "CYX").export("dict")
    rec["planes"] = [rec["planes"][0], rec["planes"][0]]  # two planes, both c=0: c=1 is missing
    with pytest.raises(SchemaError, match=r"record has 2 planes but none for t=0, z=0, c=1"):
        OMEArrow(rec)


def test_missing_record_chunks_are_refused() -> None:
    a = np.arange(2 * 4 * 6, dtype=np.uint16).reshape(1, 1, 2, 4, 6)  # TCZYX
    rec = OMEArrow(a).export("dict")
    chunk = {
        "t": 0,
        "c": 0,
        "z": 0,
        "y": 0,
        "x": 0,
        "shape_z": 1,
        "shape_y": 4,
        "shape_x": 6,
        "pixels": a[0, 0, 0].reshape(-1).tolist(),
    }
    rec["chunks"] = [chunk, {**chunk, "z": 1, "pixels": a[0, 0, 1].reshape(-1).tolist()}]
    rec["planes"] = []
    np.testing.assert_array_equal(OMEArrow(rec).to_numpy()[0, 0], a[0, 0])  # chunks alone are enough
    rec["chunks"] = rec["chunks"][:1]
    with pytest.raises(SchemaError, match="the record's chunks cover 24 pixels; its sizes need 48"):
        OMEArrow(rec)


def test_a_dataset_index_missing_a_chunk_is_damaged(tmp_path: Path) -> None:
    out = tmp_path / "d.ome.parquet"
    OMEArrow(np.ones((2, 64, 64), np.uint16), "CYX").export("parquet", out, chunk_shape=(32, 32))
    index = pq.read_table(out / "index.parquet")
    pq.write_table(index.slice(1), out / "index.parquet")
    without_table_digests(out)  # a lie the table checksums would refuse first
    with pytest.raises(SchemaError, match="cover 7168 pixels, its sizes need 8192; the dataset is damaged"):
        OMEArrow.scan(out)
    with pytest.raises(SchemaError, match="cover 7168 pixels, its sizes need 8192; the dataset is damaged"):
        OMEArrowDataset.scan(out).read([0])  # the batched reader checks too


def test_bad_metadata() -> None:
    with pytest.raises(SchemaError, match=r"image sizes must be >= 1, got \{'Z': 0\}"):
        ImageMeta(sizes={"Z": 0, "Y": 2, "X": 2}, dtype=np.dtype("uint8"))
    from ome_arrow_core import Channel

    with pytest.raises(SchemaError, match="metadata lists 1 channels but size_c is 2"):
        ImageMeta(sizes={"C": 2, "Y": 2, "X": 2}, dtype=np.dtype("uint8"), channels=(Channel(id="a"),))


def test_unreadable_objects() -> None:
    with pytest.raises(PluginError, match="no plugin handles input of type builtins.object"):
        OMEArrow(object())
    with pytest.raises(LayoutError, match="cannot infer the axes of a 1-D array"):
        OMEArrow(np.zeros(5, np.uint8))


# -- bad requests ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("layout", "match"),
    [
        ("", "non-empty string"),
        ("ABC", "unknown axes 'AB'"),
        ("TT", "repeats an axis"),
        ("CYXW", "repeats an axis"),
        (123, "non-empty string"),
    ],
)
def test_bad_layout_strings(layout: Any, match: str) -> None:
    img = OMEArrow(np.zeros((2, 5, 6), np.uint8))
    with pytest.raises(LayoutError, match=match):
        img.tensor_view(layout=layout)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"roi": (4, 0, 3, 2)}, r"x range \[4, 7\) does not fit in \[0, 6\); valid x spans lie within 0..6"),
        ({"roi3d": (0, 0, 1, 2, 2, 2)}, r"z range \[1, 3\) does not fit in \[0, 2\)"),
        (
            {"roi_nd": (0, 0, 0, 1, 1, 1)},
            r"roi_nd with 6 values is ambiguous or invalid; pass roi_type= \('2d': 4 values",
        ),
        ({"tile": (0, 1)}, r"outside the 1x1 grid"),
        ({"z": 2}, r"z=2 is out of range; valid z indices are 0..1 \(size 2\)"),
    ],
)
def test_bad_selections(kwargs: dict[str, Any], match: str) -> None:
    img = OMEArrow(np.zeros((2, 5, 6), np.uint8))  # ZYX
    with pytest.raises(SelectionError, match=match):
        img.tensor_view(**kwargs)


def test_bad_exports(tmp_path: Path) -> None:
    img = OMEArrow(np.zeros((4, 4), np.uint8))
    with pytest.raises(OMEArrowError, match=r"export\(how='parquet'\) writes a file: pass out='path'"):
        img.export("parquet")
    with pytest.raises(PluginError, match="no writer for how='gif'; known formats:"):
        img.export("gif", tmp_path / "x.gif")
    with pytest.raises(ArgumentError, match="layout must be 'dataset' or 'record', got 'zarr'"):
        img.export("parquet", tmp_path / "x.ome.parquet", layout="zarr")
    with pytest.raises(
        SelectionError, match=r"chunk_shape must be \(y, x\), \(z, y, x\) or \(t, c, z, y, x\) of positive ints"
    ):
        img.export("parquet", tmp_path / "x.ome.parquet", chunk_shape=(0, 4))
    for bad in (0, -1):
        with pytest.raises(ArgumentError, match=f"rows_per_group must be >= 1, got {bad}"):
            img.export("parquet", tmp_path / "x.ome.parquet", rows_per_group=bad)
    assert listing(tmp_path) == []


# -- nothing half-written ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "options",
    [
        {"chunk_shape": (0, 4)},
        {"compression": "no-such-codec"},
        {"layout": "record", "compression": "no-such-codec"},
        {"rows_per_group": 0},
        {"rows_per_group": -1},
    ],
)
def test_a_failing_export_leaves_no_target_and_no_temp_files(options: dict[str, Any], tmp_path: Path) -> None:
    img = OMEArrow(np.arange(64, dtype=np.uint16).reshape(8, 8))
    out = tmp_path / "x.ome.parquet"
    with pytest.raises(Exception):  # noqa: B017 - which error depends on the option; the point is what is left
        img.export("parquet", out, **options)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("layout", ["dataset", "record"])
def test_a_failing_overwrite_keeps_the_previous_file(layout: str, tmp_path: Path) -> None:
    old = np.arange(64, dtype=np.uint16).reshape(8, 8)
    out = tmp_path / "x.ome.parquet"
    OMEArrow(old).export("parquet", out, layout=layout)
    before = listing(out) if out.is_dir() else out.read_bytes()
    with pytest.raises(Exception):  # noqa: B017
        OMEArrow(np.ones((3, 3), np.uint16)).export("parquet", out, layout=layout, compression="no-such-codec")
    assert (listing(out) if out.is_dir() else out.read_bytes()) == before
    assert listing(tmp_path) == ["x.ome.parquet"]
    np.testing.assert_array_equal(OMEArrow(out).tensor_view(layout="YX").to_numpy(), old)
    OMEArrow(old * 2).export("parquet", out, layout=layout)  # a successful overwrite replaces it
    np.testing.assert_array_equal(OMEArrow(out).tensor_view(layout="YX").to_numpy(), old * 2)
    assert listing(tmp_path) == ["x.ome.parquet"]


def test_a_writer_failing_midway_leaves_nothing(tmp_path: Path) -> None:
    def write(image: OMEArrow, out: Path, **_: Any) -> Path:
        with atomic_path(out) as tmp:
            tmp.write_bytes(image.to_numpy().tobytes()[:10])  # half the file...
            raise OSError("disk full")  # ...then the failure

    class Flaky:
        @hookimpl
        def ome_arrow_writers(self) -> Sequence[Writer]:
            return [Writer(name="flaky", formats=("flaky",), write=write)]

    reg = Registry(autoload=False)
    reg.register(Flaky(), name="flaky")
    with pytest.raises(OSError, match="disk full"):
        OMEArrow(np.zeros((4, 4), np.uint8), registry=reg).export("flaky", tmp_path / "sub" / "x.flaky")
    assert listing(tmp_path / "sub") == []


@pytest.mark.parametrize("directory", [False, True])
def test_atomic_path_even_on_keyboard_interrupt(directory: bool, tmp_path: Path) -> None:
    target = tmp_path / "t"
    f, g = ("_ome_arrow_dataset.json", "images.parquet")  # a directory is replaced only if it is a dataset
    with atomic_path(target, directory=directory) as tmp:
        ((tmp / f).write_text("v1"), (tmp / g).write_text("v1")) if directory else tmp.write_text("v1")
    with pytest.raises(KeyboardInterrupt), atomic_path(target, directory=directory) as tmp:
        (tmp / f).write_text("v2") if directory else tmp.write_text("v2")
        raise KeyboardInterrupt
    assert listing(tmp_path) == ["t"]
    assert ((target / f) if directory else target).read_text() == "v1"
    with atomic_path(target, directory=directory) as tmp:
        (tmp / f).write_text("v3") if directory else tmp.write_text("v3")
    assert listing(tmp_path) == ["t"]
    if directory:
        assert listing(target) == [f]  # the old directory is replaced, not merged
    else:
        assert target.read_text() == "v3"
