"""A folder of image files under planned readers: ``copies()`` left out image files, so a torch dataset, dask array or
Ray dataset planned from a folder of TIFFs read a file replaced since as the new image (another shape, or other
pixels) beside the planned row; each file is now a member with its version, and a replaced one raises StorageError
(ESTALE) naming it."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")
pytest.importorskip("ome_arrow_tiff", reason="needs ome-arrow-tiff (pip install -e backends/tiff)")

from ome_arrow_core import OMEArrowDataset  # noqa: E402
from ome_arrow_core.errors import StorageError  # noqa: E402

pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")

SHAPE = (12, 16)
HOWS = ["renamed, another shape", "renamed, same shape", "in place, another shape", "in place, same shape"]


def _folder(tmp_path: Path, n: int = 3) -> Path:
    """``n`` TIFFs ``i.tif``, image ``i`` all ``i + 1``, written a second ago (a rewrite now gets another time)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(n):
        path = folder / f"{i}.tif"
        tifffile.imwrite(path, np.full(SHAPE, i + 1, np.uint16))
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    return folder


def _replace(path: Path, how: str) -> None:
    """Write another image over ``path``: by rename or in place, of another shape or the same shape (other pixels)."""
    new = np.full((20, 24) if "another shape" in how else SHAPE, 99, np.uint16)
    ino = os.stat(path).st_ino
    if how.startswith("renamed"):
        staged = path.parent.parent / f"staged-{path.name}"
        tifffile.imwrite(staged, new)
        os.replace(staged, path)
        assert os.stat(path).st_ino != ino
    else:  # tifffile truncates the file it writes: the same inode
        tifffile.imwrite(path, new)
        assert os.stat(path).st_ino == ino


def _stale(match: str = r"1\.tif was overwritten after") -> Any:
    return pytest.raises(StorageError, match=match)


@pytest.mark.parametrize("how", HOWS)
def test_copies_list_each_image_file_with_its_version(tmp_path: Path, how: str) -> None:
    folder = _folder(tmp_path)
    ds = OMEArrowDataset.scan(folder)
    made = ds.copies()
    assert [p for p, _, _ in made] == [str(folder / f"{i}.tif") for i in range(3)]
    assert ds.copies([2, 0]) == [made[0], made[2]] and ds.copies() == made  # a stat each, nothing changed
    ds.check_copies(made, None, "the test")
    _replace(folder / "1.tif", how)
    assert ds.copies([0, 2]) == [made[0], made[2]] and ds.copies([1]) != [made[1]]
    ds.check_copies(made, [0, 2], "the test")  # the files left alone: nothing raised
    with _stale(r"images/1\.tif was overwritten after the test was made from it.*scan it again") as err:
        ds.check_copies(made, [2, 1], "the test")
    assert err.value.errno == errno.ESTALE
    with _stale():  # a list of copies other than copies() gives: looked up by path
        ds.check_copies(made[1:], [1], "the test")


@pytest.mark.parametrize("how", HOWS)
def test_a_torch_dataset_over_a_folder_of_files_refuses_a_replaced_file(tmp_path: Path, how: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("ome_arrow_torch")
    from ome_arrow_torch import OMEArrowTorchDataset

    folder = _folder(tmp_path)
    data = OMEArrowTorchDataset(OMEArrowDataset.scan(folder), target="image_id")
    pixels, target = data[1]
    assert int(pixels.float().max()) == 2 and target == "1.tif"
    _replace(folder / "1.tif", how)
    with _stale(r"1\.tif was overwritten after this OMEArrowTorchDataset") as err:
        data[1]
    assert err.value.errno == errno.ESTALE
    with _stale():
        data[[0, 1]]
    for i in (0, 2):  # the files left alone still read
        pixels, target = data[i]
        assert int(pixels.float().max()) == i + 1 and target == f"{i}.tif"


def test_an_untouched_folder_reads_after_planning(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("ome_arrow_torch")
    pytest.importorskip("ome_arrow_dask")
    from ome_arrow_dask import to_dask
    from ome_arrow_torch import OMEArrowTorchDataset

    folder = _folder(tmp_path)
    ds = OMEArrowDataset.scan(folder)
    data, arr = OMEArrowTorchDataset(ds), to_dask(ds)
    assert [int(data[i].float().max()) for i in range(3)] == [1, 2, 3]
    assert [int(b.max()) for b in arr.compute(scheduler="sync")] == [1, 2, 3]


@pytest.mark.parametrize("how", HOWS)
def test_a_dask_array_over_a_folder_of_files_refuses_a_replaced_file(tmp_path: Path, how: str) -> None:
    pytest.importorskip("ome_arrow_dask")
    from ome_arrow_dask import to_dask

    folder = _folder(tmp_path)
    ds = OMEArrowDataset.scan(folder)
    arr = to_dask(ds, images_per_chunk=1)
    _replace(folder / "1.tif", how)
    with _stale(r"1\.tif was overwritten after this dask array was made") as err:
        arr.compute(scheduler="sync")
    assert err.value.errno == errno.ESTALE
    kept = arr[[0, 2]].compute(scheduler="sync")  # blocks of the files left alone still read
    assert [int(b.max()) for b in kept] == [1, 3]
    if "same shape" in how:  # a new scan reads the new file
        assert int(to_dask(OMEArrowDataset.scan(folder)).compute(scheduler="sync")[1].max()) == 99


@pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
@pytest.mark.parametrize("how", ["renamed, another shape", "in place, same shape"])
def test_ray_read_tasks_over_a_folder_of_files_refuse_a_replaced_file(tmp_path: Path, how: str) -> None:
    """Read tasks planned by the driver, shipped pickled and run in this process (no Ray cluster)."""
    pytest.importorskip("ray.data")
    pytest.importorskip("ome_arrow_ray")
    from ray import cloudpickle

    from ome_arrow_ray import OMEArrowDatasource

    folder = _folder(tmp_path)
    view = {"t": None, "z": None, "c": None, "roi": None, "layout": None, "channel_policy": "error"}
    source = OMEArrowDatasource(
        OMEArrowDataset.scan(folder), columns=["image_id"], image_column="image", view=view, images_per_block=1
    )
    tasks = source.get_read_tasks(3)
    _replace(folder / "1.tif", how)
    rows, raised = {}, []
    for task in tasks:
        try:
            for block in cloudpickle.loads(cloudpickle.dumps(task))():
                rows.update({r["image_id"]: np.asarray(r["image"]) for r in block.to_pylist()})
        except StorageError as exc:
            raised.append(exc)
    assert len(raised) == 1 and raised[0].errno == errno.ESTALE
    assert "1.tif was overwritten after this Ray dataset" in str(raised[0])
    assert "1.tif" not in rows and "2.tif" in rows  # a later task's files left alone still read
    assert all(int(image.max()) == int(name[0]) + 1 for name, image in rows.items())  # each its planned pixels


def test_an_ome_zarr_image_of_a_folder_replaced_by_rename_is_a_changed_copy(tmp_path: Path) -> None:
    """An image directory (an OME-Zarr image) is listed by its inode, as a plate is: a new copy renamed in."""
    pytest.importorskip("zarr")
    pytest.importorskip("ome_arrow_zarr")
    import shutil

    from zarr_stores import write_zarr_python

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        write_zarr_python(folder / f"{i}.ome.zarr", [np.full(SHAPE, i + 1, np.uint16)], "yx")
    ds = OMEArrowDataset.scan(folder)
    made = ds.copies()
    assert "[file]" in repr(ds)  # two image directories
    assert [p for p, _, _ in made] == [str(folder / f"{i}.ome.zarr") for i in range(2)]
    assert [int(ds[i].to_numpy().max()) for i in range(2)] == [1, 2]
    write_zarr_python(tmp_path / "new.ome.zarr", [np.full(SHAPE, 99, np.uint16)], "yx")
    shutil.rmtree(folder / "1.ome.zarr")
    os.replace(tmp_path / "new.ome.zarr", folder / "1.ome.zarr")
    ds.check_copies(made, [0], "the test")
    with _stale(r"1\.ome\.zarr was overwritten after the test") as err:
        ds.check_copies(made, [1], "the test")
    assert err.value.errno == errno.ESTALE
