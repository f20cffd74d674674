"""What a new user writes first behaves as it reads: ``np.asarray(img)`` and ``torch.as_tensor(img)`` are the
pixels, ``export(out="x.ome.tiff")`` writes that file (and a format that returns memory refuses an ``out`` it would
ignore), lazy views pickle (spawned DataLoader workers), numpy indices and one-int tile sizes are taken, bad ones
get our errors, ``python -m ome_arrow_core`` is the CLI, and an OME-Zarr output is never replaced by ``--force``."""

from __future__ import annotations

import copy
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, SelectionError
from ome_arrow_core.cli import main
from ome_arrow_core.errors import ArgumentError

A = np.arange(2 * 3 * 16 * 20, dtype=np.uint16).reshape(2, 3, 16, 20)  # ZCYX


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("first") / "a.ome.parquet"
    OMEArrow(A, dim_order="ZCYX").export("parquet", out, chunk_shape=(8, 8))
    return out


def images(path: Path) -> list[OMEArrow]:
    return [OMEArrow(A, dim_order="ZCYX"), OMEArrow.scan(path)]


def test_an_image_is_its_pixels_to_numpy_and_dlpack_consumers(scanned: Path) -> None:
    want = A.transpose(1, 0, 2, 3)[None]  # TCZYX
    for img in images(scanned):
        got = np.asarray(img)
        assert got.dtype == np.uint16 and got.shape == (1, 3, 2, 16, 20)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.asarray(img, dtype=np.float32), want.astype(np.float32))
        copied = np.array(img, copy=True)
        copied[0, 0, 0, 0, 0] = 9
        np.testing.assert_array_equal(img.to_numpy(), want)
        with pytest.raises(ValueError, match="copy=False"):
            np.asarray(img, dtype=np.float32, copy=False)
        np.testing.assert_array_equal(np.from_dlpack(img), want)
        assert img.__dlpack_device__() == (1, 0)
        np.testing.assert_array_equal(OMEArrow(img).to_numpy(), want)  # an image still opens as itself
    torch = pytest.importorskip("torch")
    for img in images(scanned):
        np.testing.assert_array_equal(torch.as_tensor(img).numpy(), want)


@pytest.mark.parametrize(
    ("name", "how"),
    [("a.ome.tiff", "ome-tiff"), ("b.ome.parquet", "parquet"), ("c.ome.zarr", "ome-zarr"), ("d.vortex", "vortex")],
)
def test_export_to_a_path_writes_the_format_its_suffix_names(tmp_path: Path, name: str, how: str) -> None:
    if how == "vortex":
        pytest.importorskip("vortex")
    if how == "ome-zarr":
        pytest.importorskip("zarr")
    img = OMEArrow(A, dim_order="ZCYX")
    assert Path(img.export(out=tmp_path / name)) == tmp_path / name
    np.testing.assert_array_equal(OMEArrow(tmp_path / name).to_numpy(), img.to_numpy())


def test_export_refuses_an_out_it_would_ignore_or_cannot_name(tmp_path: Path) -> None:
    img = OMEArrow(A, dim_order="ZCYX")
    for how in ("numpy", "dict", "arrow"):
        with pytest.raises(ArgumentError, match=rf"export\(how='{how}'\) returns the image and writes no file"):
            img.export(how, tmp_path / "x.ome.tiff")
    with pytest.raises(ArgumentError, match=r"its name does not say which format to write; pass how="):
        img.export(out=tmp_path / "x.tif")
    assert os.listdir(tmp_path) == []
    np.testing.assert_array_equal(img.export(), img.to_numpy())  # no arguments: numpy, as before


def test_a_lazy_view_pickles_and_copies_collected_or_not(scanned: Path) -> None:
    view = OMEArrow.scan(scanned).tensor_view(c=[2, 0], roi=(3, 5, 10, 6), layout="CZYX")
    want = A[:, [2, 0], 5:11, 3:13].transpose(1, 0, 2, 3)
    for v in (view, pickle.loads(pickle.dumps(view)), copy.deepcopy(view)):
        np.testing.assert_array_equal(v.to_numpy(), want)
    again = pickle.loads(pickle.dumps(view))  # collected now: its pixels travel with it
    assert again.is_collected
    np.testing.assert_array_equal(again.to_numpy(), want)


def test_numpy_indices_and_bad_slices(scanned: Path) -> None:
    for img in images(scanned):
        got = img.tensor_view(z=np.array(1), c=np.int64(2), layout="YX").to_numpy()
        np.testing.assert_array_equal(got, A[1, 2])
        with pytest.raises(SelectionError, match=r"z indices must be one-dimensional, got an array of shape \(1, 1\)"):
            img.tensor_view(z=np.zeros((1, 1), int))
        with pytest.raises(SelectionError, match=r"c=slice\(0, 3, 0\): slice step cannot be zero"):
            img.tensor_view(c=slice(0, 3, 0))
        with pytest.raises(SelectionError, match=r"z=slice\(0.5, 1, None\): slice indices must be integers"):
            img.tensor_view(z=slice(0.5, 1))


def test_one_int_is_a_square_tile_and_bad_tile_sizes_say_what_they_take(scanned: Path) -> None:
    for img in images(scanned):
        view = img.tensor_view(z=0, layout="CYX")
        square = [np.from_dlpack(t) for t in view.iter_dlpack(tile_size=8)]
        pairs = [np.from_dlpack(t) for t in view.iter_dlpack(tile_size=(8, 8))]
        assert len(square) == len(pairs) == 6
        for a, b in zip(square, pairs, strict=True):
            np.testing.assert_array_equal(a, b)
        for bad, match in [((8, 8, 8), r"takes 2 integers \(or one\), got \(8, 8, 8\)"), ("8", "got '8'")]:
            with pytest.raises(ArgumentError, match=match):
                list(view.iter_dlpack(tile_size=bad))
        with pytest.raises(SelectionError, match="tile size along Y must be >= 1, got 0"):
            list(view.iter_dlpack(tile_size=0))


def test_python_m_ome_arrow_core_is_the_cli() -> None:
    done = subprocess.run([sys.executable, "-m", "ome_arrow_core", "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ome-arrow-core" in done.stdout or done.stdout.strip()[0].isdigit()


def test_convert_force_never_replaces_an_ome_zarr_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("zarr")
    src, out = tmp_path / "in.ome.parquet", tmp_path / "out.ome.zarr"
    OMEArrow(A, dim_order="ZCYX").export(out=src)
    assert main(["convert", str(src), "-o", str(out), "-q"]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["convert", str(src), "-o", str(out), "--force", "-q"]) == 1
    assert "an OME-Zarr output is never replaced, --force or not" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_a_lazy_view_knows_ndim_nbytes_and_device_before_reading(scanned: Path) -> None:
    img = OMEArrow.scan(scanned)
    for layout, kw in (("CYX", {"z": 1}), ("ZCYX", {}), ("YX", {"z": 0, "c": 2})):
        lazy = img.tensor_view(layout=layout, roi=(3, 5, 10, 6), **kw)
        eager = OMEArrow(A, dim_order="ZCYX").tensor_view(layout=layout, roi=(3, 5, 10, 6), **kw)
        assert (lazy.ndim, lazy.nbytes, lazy.device) == (eager.ndim, eager.nbytes, eager.device)
        assert not lazy.is_collected


def test_dim_order_with_one_file_is_refused_not_ignored(scanned: Path) -> None:
    for open_ in (OMEArrow, OMEArrow.scan):
        with pytest.raises(ArgumentError, match=r"dim_order='YXC' names the axes of an array.*is one file"):
            open_(scanned, dim_order="YXC")
    assert OMEArrow.scan(scanned).sizes == {"T": 1, "Z": 2, "C": 3, "Y": 16, "X": 20}


@pytest.mark.parametrize("how", ["parquet", "ome-zarr", "vortex", "ome-tiff"])
def test_an_option_no_writer_has_is_ours_to_refuse(tmp_path: Path, how: str) -> None:
    pytest.importorskip({"ome-zarr": "zarr", "vortex": "vortex", "ome-tiff": "tifffile"}.get(how, "pyarrow"))
    with pytest.raises(ArgumentError, match=r"no option 'overwrite'"):
        OMEArrow(A, dim_order="ZCYX").export(how, tmp_path / "x", overwrite=True)
    assert list(tmp_path.iterdir()) == []


def test_convert_says_how_to_write_a_chunk_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.ome.parquet"
    OMEArrow(A, dim_order="ZCYX").export(out=src)
    for bad in ("32x32", "32;32", "a,b"):
        assert main(["convert", str(src), "-o", str(tmp_path / "o.ome.parquet"), "--chunk-shape", bad]) == 1
        assert f"--chunk-shape {bad!r}: give integers separated by commas" in capsys.readouterr().err
    assert not (tmp_path / "o.ome.parquet").exists()
    assert main(["convert", str(src), "-o", str(tmp_path / "o.ome.parquet"), "--chunk-shape", "8,8", "-q"]) == 0


def test_an_option_no_reader_has_is_refused_not_ignored(tmp_path: Path, scanned: Path) -> None:
    pytest.importorskip("zarr")
    a = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    store = tmp_path / "lv.ome.zarr"
    OMEArrow(a).export("ome-zarr", store, levels=3)
    assert OMEArrow.scan(store, level=2).shape == (1, 1, 1, 16, 16)
    with pytest.raises(ArgumentError, match=r"the 'ome-zarr' reader has no option 'levle'; it takes .*level"):
        OMEArrow.scan(store, levle=2)  # read the full resolution silently before
    for open_ in (OMEArrow, OMEArrow.scan):
        with pytest.raises(ArgumentError, match=r"the 'parquet' reader has no option 'bogus'"):
            open_(scanned, bogus=1)
        assert open_(scanned, verify=False).shape == (1, 3, 2, 16, 20)  # an option any reader may ignore
    if importlib.util.find_spec("vortex") is not None:  # a reader forwarding **kw: refused where it lands
        OMEArrow(a).export(out=tmp_path / "x.vortex")
        with pytest.raises(ArgumentError, match=r"the 'vortex' reader has no option 'bogus'"):
            OMEArrow.scan(tmp_path / "x.vortex", bogus=1)
    with pytest.raises(ArgumentError, match=r"OMEArrow\(an array \(ndarray\)\) takes no option 'channel_names'"):
        OMEArrow(A, dim_order="ZCYX", channel_names=["a", "b", "c"])


def test_an_export_does_not_replace_a_plate_with_one_image(tmp_path: Path) -> None:
    from ome_arrow_core import OMEArrowDataset, write_dataset
    from ome_arrow_core.errors import UnsafeOverwriteError

    z = np.zeros((2, 8, 8), np.uint16)
    out = write_dataset([z, z + 1, z + 2], tmp_path / "plate.ome.parquet", dim_order="CYX", progress=False)
    with pytest.raises(UnsafeOverwriteError, match="holds a dataset of 3 images and this export writes 1"):
        OMEArrow(z, dim_order="CYX").export(out=out)
    assert len(OMEArrowDataset.scan(out)) == 3
    one = tmp_path / "one.ome.parquet"
    OMEArrow(z, dim_order="CYX").export(out=one)
    OMEArrow(z + 5, dim_order="CYX").export(out=one)  # one image over one image: replaced, as a file is
    np.testing.assert_array_equal(OMEArrow(one).to_numpy()[0, :, 0], z + 5)


def test_write_dataset_checks_image_ids_and_rows_against_the_images(tmp_path: Path) -> None:
    from ome_arrow_core import OMEArrowDataset, write_dataset

    z = np.zeros((2, 8, 8), np.uint16)
    with pytest.raises(ArgumentError, match="image_ids takes one id per image .* got the string 'ab'"):
        write_dataset([z, z], tmp_path / "a.ome.parquet", dim_order="CYX", image_ids="ab", progress=False)
    with pytest.raises(ArgumentError, match="image_ids holds more ids than the 2 images"):
        write_dataset([z, z], tmp_path / "b.ome.parquet", dim_order="CYX", image_ids=["x", "y", "w"], progress=False)
    with pytest.raises(ArgumentError, match="metadata holds more rows than the 2 images"):
        write_dataset(
            iter([z, z]), tmp_path / "c.ome.parquet", dim_order="CYX", metadata=[{"k": 1}] * 3, progress=False
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing was written
    out = write_dataset([z, z], tmp_path / "d.ome.parquet", dim_order="CYX", image_ids=["x", "y"], progress=False)
    assert [im.meta.id for im in OMEArrowDataset.scan(out)] == ["x", "y"]


def test_rewriting_a_dataset_keeps_its_image_ids(tmp_path: Path) -> None:
    from ome_arrow_core import OMEArrowDataset, write_dataset

    arrs = [np.full((2, 4, 4), i, np.uint16) for i in range(3)]
    src = write_dataset(arrs, tmp_path / "src", dim_order="CYX", image_ids=["A01-1", "A01-2", "B02-1"], progress=False)
    copy_ = OMEArrowDataset.scan(write_dataset(OMEArrowDataset.scan(src), tmp_path / "copy", progress=False))
    assert copy_.table.column("image_id").to_pylist() == ["A01-1", "A01-2", "B02-1"]  # were image-00000...
    kept = OMEArrowDataset.scan(src, filter={"image_id": ["B02-1"]})
    write_dataset(kept, src, mode="overwrite", progress=False)
    assert OMEArrowDataset.scan(src).table.column("image_id").to_pylist() == ["B02-1"]
    both = OMEArrowDataset.scan(
        write_dataset(OMEArrowDataset.scan(src), tmp_path / "copy", mode="append", progress=False)
    )
    assert both.table.column("image_id").to_pylist() == ["A01-1", "A01-2", "B02-1", "image-00003"]  # an append numbers


def test_a_bad_out_or_rois_of_a_batch_read_is_an_argument_error(tmp_path: Path) -> None:
    from ome_arrow_core import OMEArrowDataset, write_dataset
    from ome_arrow_core.errors import SchemaError

    ds = OMEArrowDataset.scan(write_dataset([np.zeros((4, 4), np.uint8)] * 2, tmp_path / "p", progress=False))
    bad: list[dict[str, object]] = [
        {"out": [0, 0]},  # was TypeError: 'list' object is not callable
        {"out": np.empty((2, 4, 4), np.int16)},  # these were SchemaErrors, which blame a file
        {"out": np.frombuffer(bytes(32), np.uint8).reshape(2, 4, 4)},
        {"out": lambda shape, dtype: [0]},
        {"rois": [(0, 0, 2, 2)]},
    ]
    for kwargs in bad:
        with pytest.raises(ArgumentError) as caught:
            ds.read([0, 1], **kwargs)  # type: ignore[arg-type]
        assert not isinstance(caught.value, SchemaError), kwargs
