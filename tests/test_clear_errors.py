"""Errors of the hierarchy for bad arguments and damaged files; old ``except`` clauses still catch them;
the command line says one line for any failure."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ome_arrow_core import (
    OMEArrow,
    OMEArrowDataset,
    OMEArrowError,
    Reader,
    SchemaError,
    SelectionError,
    default_registry,
    hookimpl,
    write_dataset,
)
from ome_arrow_core.boundary import blaming, reading
from ome_arrow_core.cli import main
from ome_arrow_core.errors import (
    ArgumentError,
    ArgumentTypeError,
    DamagedFileError,
    DTypeError,
    SelectionTypeError,
    StorageError,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    arrs = [np.full((2, 8, 8), i, np.uint16) for i in range(3)]
    return write_dataset(arrs, tmp_path_factory.mktemp("d") / "d.ome.parquet", dim_order="CYX", progress=False)


# -- arguments ------------------------------------------------------------------------------------
def test_dataset_indices(dataset: Path) -> None:
    ds = OMEArrowDataset.scan(dataset)
    for bad in (10**9, -4, 3):
        with pytest.raises(SelectionError, match=rf"image {bad} is out of range; the dataset holds images 0..2"):
            ds[bad]
        with pytest.raises(IndexError):  # what it raised before
            ds.select([bad])
    for bad in (1.0, "1", True, None, np.float64(1)):
        with pytest.raises(SelectionTypeError, match="a dataset index must be an integer"):
            ds[bad]  # type: ignore[index]
        with pytest.raises(TypeError):  # what it raised before
            ds.read([bad])  # type: ignore[list-item]
    with pytest.raises(SelectionTypeError, match="a dataset index must be an integer, got 1.5"):
        ds.select([0, 1.5])  # type: ignore[list-item]  # was silently truncated to 1
    assert np.array_equal(ds[np.int64(-1)].to_numpy(), ds[2].to_numpy())


@pytest.mark.parametrize("bad", [0, np.int64(2), np.array(1), "01", 1.5])
def test_dataset_reads_take_a_sequence_of_indices(dataset: Path, bad: Any) -> None:
    ds = OMEArrowDataset.scan(dataset)
    for call, name in ((ds.read, "read"), (ds.select, "select"), (ds.tensor_views(c=0).read, "read")):
        with pytest.raises(ArgumentError, match=rf"{name}\(\) takes a sequence of image indices .* pass \[i\]"):
            call(bad)  # ds.read(0) raised "'int' object is not iterable" before
        with pytest.raises(TypeError):  # what it raised before
            call(bad)
    assert ds.read([0]).shape == (1, 2, 8, 8) and len(ds.select(x for x in (2, 0))) == 2


@pytest.mark.parametrize(
    ("row", "error", "match"),
    [
        (1.5, SelectionTypeError, r"row= must be an integer, got 1.5 \(float\)"),
        ("0", SelectionTypeError, r"row= must be an integer, got '0' \(str\)"),
        (True, SelectionTypeError, r"row= must be an integer, got True \(bool\)"),
        (-1, ArgumentError, r"row= takes an image number >= 0, got -1"),
        (10**9, ArgumentError, r"row 1000000000 out of range; .* holds images 0..2"),
    ],
)
def test_odd_row_values(dataset: Path, row: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        OMEArrow.scan(dataset, row=row)


def test_odd_row_values_of_a_record_file_and_a_tiff(tmp_path: Path) -> None:
    img = OMEArrow(np.zeros((4, 4), np.uint8))
    rec = img.export("parquet", tmp_path / "r.parquet", layout="record")
    with pytest.raises(ArgumentError, match="row 1 is out of range"):
        OMEArrow(rec, row=1)
    with pytest.raises(SelectionTypeError):
        OMEArrow(rec, row=0.0)
    pytest.importorskip("ome_arrow_tiff")
    tif = img.export("ome-tiff", tmp_path / "x.ome.tiff")
    with pytest.raises(SelectionTypeError, match="row= must be an integer, got 0.5"):  # was read as series 0
        OMEArrow(tif, row=0.5)


def test_the_reference_s_keywords_say_where_its_api_is() -> None:
    """OMEArrow(..., column_name=, row_index=) are the reference's spellings: a TypeError of the library's own
    (ArgumentTypeError), naming ours and the compatibility module."""
    with pytest.raises(ArgumentTypeError, match=r"column_name \(column=\), row_index \(row=\).*compat as ome_arrow"):
        OMEArrow(np.zeros((2, 2), np.uint8), column_name="a", row_index=1)
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, ArgumentError)


def test_export_needs_a_format_name(tmp_path: Path) -> None:
    img = OMEArrow(np.zeros((4, 4), np.uint8))
    for bad in (3, b"parquet"):
        with pytest.raises(ArgumentError, match="export\\(how=...\\) takes a format name"):
            img.export(bad, tmp_path / "x")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="its name does not say which format to write; pass how="):
        img.export(None, tmp_path / "x")  # no format given, none in the name
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("how", "options"),
    [
        ("parquet", {"compression": "bogus"}),
        ("parquet", {"compression": 3}),
        ("parquet", {"layout": "record", "compression": "bogus"}),
        ("parquet", {"rows_per_group": 1.5}),
        ("parquet", {"compression_level": "high"}),
        ("vortex", {"compression": "lz4"}),
        ("ome-tiff", {"compression": "bogus"}),
    ],
)
def test_bad_codec_options_are_argument_errors(how: str, options: dict[str, Any], tmp_path: Path) -> None:
    if how != "parquet":
        pytest.importorskip(f"ome_arrow_{how.split('-')[-1]}")
    with pytest.raises(ArgumentError):
        OMEArrow(np.zeros((4, 4), np.uint8)).export(how, tmp_path / "x", **options)
    assert list(tmp_path.iterdir()) == []


def test_write_dataset_arguments(tmp_path: Path) -> None:
    for kwargs, match in (
        ({"mode": "upsert"}, "mode must be 'create', 'append' or 'overwrite'"),
        ({"compression": "lzma"}, "compression='lzma' is not a Parquet codec"),
        ({"rows_per_group": 0}, "rows_per_group must be >= 1"),
    ):
        with pytest.raises(ArgumentError, match=match):
            write_dataset([np.zeros((4, 4), np.uint8)], tmp_path / "d", progress=False, **kwargs)
        with pytest.raises(ValueError):  # what it raised before (a SchemaError)
            write_dataset([np.zeros((4, 4), np.uint8)], tmp_path / "d", progress=False, **kwargs)
    assert not (tmp_path / "d").exists()


# -- damaged files and the OS ---------------------------------------------------------------------
def test_a_truncated_member_names_the_dataset_and_the_member(dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(dataset, tmp_path / "plate.ome.parquet"))
    data = (copy / "index.parquet").read_bytes()
    (copy / "index.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedFileError, match=r"plate.ome.parquet \[index.parquet\]: the table's bytes do not match"):
        OMEArrow.scan(copy)
    with pytest.raises(ValueError):  # a SchemaError, as before
        OMEArrowDataset.scan(copy)[0]


def test_a_manifest_that_is_not_utf8(dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(dataset, tmp_path / "d.ome.parquet"))
    (copy / "_ome_arrow_dataset.json").write_bytes(b'{"name": "\xff"}')
    with pytest.raises(DamagedFileError, match="_ome_arrow_dataset.json is not valid UTF-8 JSON"):
        OMEArrowDataset.scan(copy)


def test_a_dataset_scan_names_a_parquet_file_that_is_not_parquet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1garbagePAR1")  # raised pyarrow's ArrowInvalid, naming no file, before
    for target in (garbage, tmp_path):
        with pytest.raises(
            DamagedFileError, match=r"garbage.parquet: reading the Parquet schema failed \(ArrowInvalid"
        ):
            OMEArrowDataset.scan(target)
    assert main(["info", str(garbage)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {garbage}: reading the Parquet schema failed") and "damaged" in err, err
    garbage.unlink()
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "plain.parquet")
    with pytest.raises(SchemaError, match=r"plain.parquet: no OME-Arrow column found"):  # in a directory: which file
        OMEArrowDataset.scan(tmp_path)


@pytest.mark.parametrize("bad", [None, 123, b"d.ome.parquet", ["d.ome.parquet"]])
def test_a_dataset_scan_takes_a_path(bad: Any) -> None:
    with pytest.raises(ArgumentError, match=r"OMEArrowDataset.scan takes a path \(str or os.PathLike\) or a URI"):
        OMEArrowDataset.scan(bad)
    with pytest.raises(ValueError):  # not the TypeError it raised before
        OMEArrowDataset.scan(bad)


def test_fifos_are_refused_before_any_open(tmp_path: Path) -> None:
    for name in ("x.parquet", "x.ome.tiff", "x.vortex", "x.unknown"):
        os.mkfifo(tmp_path / name)
        with pytest.raises(StorageError, match=rf"{name} is not a regular file \(a FIFO, socket or device\)") as info:
            OMEArrow.scan(tmp_path / name)
        assert isinstance(info.value, OSError)


def test_boundary_sorts_foreign_errors(tmp_path: Path) -> None:
    with pytest.raises(DamagedFileError, match=r"f.parquet \[m\]: reading failed \(OSError: Couldn't deserialize"):
        with reading(tmp_path / "f.parquet", "m"):
            raise OSError("Couldn't deserialize thrift")  # how pyarrow reports undecodable bytes: no errno
    with pytest.raises(StorageError, match=r"f.parquet: reading failed: Permission denied") as info:
        with reading(tmp_path / "f.parquet"):
            raise PermissionError(errno.EACCES, "Permission denied")
    assert info.value.errno == errno.EACCES
    with pytest.raises(DamagedFileError, match=r"f.parquet \[col\]: image sizes must be >= 1"):
        with blaming(tmp_path / "f.parquet", "col"):
            raise SchemaError("image sizes must be >= 1, got {'C': 0}")
    with pytest.raises(DTypeError, match=r"f.parquet: unknown OME pixel type"):
        with blaming(tmp_path / "f.parquet"):
            raise DTypeError("unknown OME pixel type 'bogus'")


# -- the command line -----------------------------------------------------------------------------
class _Raising:
    """A reader plugin whose open raises what a test puts in ``exc`` (a real plugin, registered for real)."""

    exc: BaseException = RuntimeError("boom")

    @hookimpl
    def ome_arrow_readers(self) -> Sequence[Reader]:
        def open_(path: Path, **_: Any) -> Any:
            raise self.exc

        return [Reader(name="raising", suffixes=(".raising",), open=open_)]


@pytest.fixture
def raising(tmp_path: Path) -> Iterator[tuple[_Raising, Path]]:
    plugin = _Raising()
    reg = default_registry()
    name = reg.register(plugin, name="raising-test")
    (tmp_path / "x.raising").write_bytes(b"x")
    try:
        yield plugin, tmp_path / "x.raising"
    finally:
        reg.unregister(name)


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (
            ZeroDivisionError("division by zero\nsecond line"),
            1,
            "error: ZeroDivisionError: division by zero (--debug shows the traceback)",
        ),
        (KeyError("k"), 1, "error: KeyError: 'k' (--debug shows the traceback)"),
        (DamagedFileError("x.raising: damaged"), 1, "error: x.raising: damaged"),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
)
def test_cli_one_line_for_anything(
    exc: BaseException, code: int, line: str, raising: tuple[_Raising, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    plugin, path = raising
    plugin.exc = exc
    assert main(["info", str(path)]) == code
    assert capsys.readouterr().err.splitlines() == [line]
    assert main(["--debug", "info", str(path)]) == code
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.splitlines()[-1] == line.split(" (--debug")[0]


def test_cli_damaged_input_in_a_child_process(dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(dataset, tmp_path / "d.ome.parquet"))
    (copy / "chunks.parquet").write_bytes(b"PAR1 not really")
    for argv in (["info", str(copy)], ["convert", str(copy), "-o", str(tmp_path / "o.ome.parquet"), "-q"]):
        proc = subprocess.run([sys.executable, "-m", "ome_arrow_core.cli", *argv], capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr
        assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr
        assert "d.ome.parquet [chunks.parquet]" in proc.stderr
    assert isinstance(DamagedFileError("x"), OMEArrowError)
    assert pq.read_metadata(dataset / "chunks.parquet").num_rows > 0  # the original is untouched


# -- damaged OME-TIFF -----------------------------------------------------------------------------
def test_a_truncated_or_lying_ome_tiff_is_refused(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow_tiff")
    import tifffile

    pixels = np.arange(2 * 3 * 16 * 16, dtype=np.uint16).reshape(2, 3, 16, 16)  # ZCYX: 6 pages
    path = tmp_path / "x.ome.tiff"
    OMEArrow(pixels, "ZCYX").export("ome-tiff", path)
    data = path.read_bytes()
    cut = tmp_path / "cut.ome.tiff"
    cut.write_bytes(data[: len(data) * 2 // 3])  # read as fewer planes, or zeros, before
    with pytest.raises(DamagedFileError, match=r"cut.ome.tiff.*truncated"):
        OMEArrow(cut).to_numpy()
    liar = tmp_path / "liar.ome.tiff"
    liar.write_bytes(data)
    with tifffile.TiffFile(liar) as tif:
        xml = tif.pages[0].description
    tifffile.tiffcomment(liar, xml.replace('SizeT="1"', 'SizeT="8"').encode())  # read as 8 planes along T before
    with pytest.raises(DamagedFileError, match=r"liar.ome.tiff.*(tifffile reports|declares sizes)"):
        OMEArrow(liar).to_numpy()
    np.testing.assert_array_equal(OMEArrow(path).tensor_view(layout="ZCYX").to_numpy(), pixels)


def test_a_foreign_message_s_control_characters_are_escaped(tmp_path: Path) -> None:
    with pytest.raises(DamagedFileError) as err:
        with reading(tmp_path / "x.parquet", None, "reading"):
            raise OSError("Couldn't deserialize thrift: don't know what type: \x0f\x1b[2J")
    text = str(err.value)
    assert text.isprintable() and "don't know what type: \\x0f\\x1b[2J" in text
