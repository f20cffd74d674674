"""DataLoader's defaults (``persistent_workers=False``): new workers every epoch read the files' pixels, share the
checks earlier workers passed; the core's reads take a dataset replaced between epochs as its new files (or raise),
never as the old ones or a mix, and a torch dataset made from the old copy raises (its samples and targets are the old
copy's)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from torch.utils.data import DataLoader  # noqa: E402

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset  # noqa: E402
from ome_arrow_core import parquet_lite as pq  # noqa: E402
from ome_arrow_core.errors import OMEArrowError, StorageError  # noqa: E402
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset  # noqa: E402
from ome_arrow_torch import OMEArrowTorchDataset  # noqa: E402
from tests.damage import flip_byte  # noqa: E402

pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")  # JAX, if imported

N = 12


def _pixels(seed: int, shape: tuple[int, ...] = (2, 40, 48)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, (N, *shape), dtype=np.uint16)


def _epoch(loader: DataLoader) -> np.ndarray:  # type: ignore[type-arg]
    return torch.cat([b.clone() for b in loader]).numpy()


def test_new_workers_every_epoch_read_the_pixels_and_share_checks(tmp_path: Path) -> None:
    clear_cache()
    arrs = _pixels(0)
    path = write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", progress=False)
    data = OMEArrowTorchDataset(OMEArrowDataset.scan(path))
    ledger = open_dataset(path).ledger  # opened by the dataset, before any worker
    assert ledger is not None and not ledger.checked(range(N)).any()
    loader = DataLoader(data, batch_size=4, num_workers=2, multiprocessing_context="fork")
    for epoch in range(3):
        data.set_epoch(epoch)
        assert np.array_equal(_epoch(loader), arrs)
        assert ledger.checked(range(N)).all()  # the workers' checks, seen by this process and the next workers


@pytest.mark.parametrize("shape", [(2, 40, 48), (1, 24, 16)], ids=["same-shape", "other-shape"])
def test_a_dataset_replaced_between_epochs_raises_and_a_new_one_reads_its_new_pixels(
    tmp_path: Path, shape: tuple[int, ...]
) -> None:
    clear_cache()
    old, new = _pixels(1), _pixels(2, shape)
    path = write_dataset(list(old), tmp_path / "p", dim_order="CYX", progress=False)
    data = OMEArrowTorchDataset(OMEArrowDataset.scan(path))
    loader = DataLoader(data, batch_size=5, num_workers=2, multiprocessing_context="fork")
    assert np.array_equal(_epoch(loader), old)
    write_dataset(list(new), path, dim_order="CYX", progress=False, mode="overwrite")
    # the new copy's pixels are not the images the samples (and targets, sizes) were taken from: they were served
    with pytest.raises(StorageError, match=f"{path} was overwritten after this OMEArrowTorchDataset"):
        _epoch(loader)  # from a worker: torch re-raises the type and message (not the errno)
    with pytest.raises(StorageError, match="was overwritten") as info:
        data[[0, 1]]
    assert info.value.errno == errno.ESTALE
    assert np.array_equal(_epoch(DataLoader(OMEArrowTorchDataset(path), batch_size=5, num_workers=2)), new)


class _Images(torch.utils.data.Dataset):  # type: ignore[misc]
    """Image ``i`` of a core dataset whose files are opened and loaded in the parent, as the torch datasets do."""

    def __init__(self, ds: OMEArrowDataset) -> None:
        self.ds = ds
        ds.open_files(load=True)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.ds.read([i])[0])


def test_appends_and_compactions_keep_persistent_workers_samples_and_an_overwrite_stops_them(tmp_path: Path) -> None:
    """Targets were taken from the copy the dataset was made from while pixels came from an overwrite's new copy:
    each image paired with another image's label, silently."""
    old = _pixels(7)
    path = write_dataset(list(old), tmp_path / "p", dim_order="CYX", metadata={"label": list(range(N))}, progress=False)
    data = OMEArrowTorchDataset(path, target="label")
    loader = DataLoader(data, batch_size=5, shuffle=False, num_workers=2, persistent_workers=True)

    def epoch() -> tuple[np.ndarray, list[int]]:
        xs, ys = zip(*[(x.clone(), y) for x, y in loader])
        return torch.cat(xs).numpy(), torch.cat(ys).tolist()

    for change in ("append", "compact"):
        if change == "append":
            write_dataset(list(_pixels(8)), path, dim_order="CYX", metadata={"label": [0] * N}, mode="append")
        else:
            assert compact_dataset(path)
        got, labels = epoch()
        assert np.array_equal(got, old) and labels == list(range(N))
    write_dataset(list(old), path, dim_order="CYX", metadata={"label": [5] * N}, mode="overwrite", progress=False)
    with pytest.raises(StorageError, match=f"{path} was overwritten after this OMEArrowTorchDataset"):
        epoch()
    with pytest.raises(StorageError, match="was overwritten") as info:
        data[0]  # without workers too
    assert info.value.errno == errno.ESTALE


def _groups_loaded(path: Path) -> int:
    opened = open_dataset(path)
    assert opened.aligned is not None  # write_dataset writes an aligned index
    return opened.aligned.loaded


def test_row_groups_loaded_before_the_fork_serve_every_epochs_workers(tmp_path: Path) -> None:
    """The dataset loads its images' row groups in the parent when made; each epoch's new workers read through
    them (no group loaded again) and read the right pixels."""
    clear_cache()
    arrs = _pixels(3)
    path = write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", images_per_group=4, progress=False)
    ds = OMEArrowDataset.scan(path)
    assert _groups_loaded(path) == 0
    data = OMEArrowTorchDataset(ds)
    parent = open_dataset(path)
    assert _groups_loaded(path) == 3  # and the images row groups, which those of the index are loaded with

    def probe(_: int) -> None:  # in each worker, before its first read: the parent's opened dataset, loaded
        assert open_dataset(path) is parent and _groups_loaded(path) == 3

    loader = DataLoader(data, batch_size=5, num_workers=2, multiprocessing_context="fork", worker_init_fn=probe)
    for epoch in range(2):
        data.set_epoch(epoch)
        assert np.array_equal(_epoch(loader), arrs)


def test_a_selection_loads_the_row_groups_of_its_images_only(tmp_path: Path) -> None:
    clear_cache()
    arrs = _pixels(7)
    path = write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", images_per_group=4, progress=False)
    data = OMEArrowTorchDataset(OMEArrowDataset.scan(path).select([9, 10]))
    assert _groups_loaded(path) == 1
    loader = DataLoader(data, batch_size=1, num_workers=2, multiprocessing_context="fork")
    assert np.array_equal(_epoch(loader), arrs[[9, 10]])


def test_workers_forked_while_the_parent_holds_the_datasets_lock_open_the_files_again(tmp_path: Path) -> None:
    """A lock held in the parent at the fork is never released in the worker: it does not take that opened dataset
    over (it would wait forever) but opens the files itself."""
    clear_cache()
    arrs = _pixels(4)
    path = write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", progress=False)
    data = OMEArrowTorchDataset(OMEArrowDataset.scan(path))
    parent = open_dataset(path)

    def probe(_: int) -> None:
        assert open_dataset(path) is not parent

    loader = DataLoader(data, batch_size=5, num_workers=2, multiprocessing_context="fork", worker_init_fn=probe)
    with parent.lock:
        it = iter(loader)  # the workers fork now
    assert np.array_equal(torch.cat([b.clone() for b in it]).numpy(), arrs)


def test_rows_loaded_before_a_replacement_are_not_read_after_it(tmp_path: Path) -> None:
    """Row groups the parent loaded from the old files serve no worker of the new ones, whose pixels, ids and
    sizes they read (or raise), even where the old and new tables have the same sizes."""
    clear_cache()
    old, new = _pixels(5), _pixels(6)
    path = write_dataset(list(old), tmp_path / "p", dim_order="CYX", progress=False)
    data = _Images(OMEArrowDataset.scan(path))  # the core's reads (a torch dataset refuses a replaced copy)
    parent = open_dataset(path)
    write_dataset(list(new), path, dim_order="CYX", progress=False, mode="overwrite")

    def probe(_: int) -> None:
        assert open_dataset(path) is not parent

    loader = DataLoader(data, batch_size=5, num_workers=2, multiprocessing_context="fork", worker_init_fn=probe)
    try:
        got = _epoch(loader)
    except OMEArrowError as exc:
        assert str(path) in str(exc) or "dataset" in str(exc)
        return
    assert np.array_equal(got, new)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_damaged_index_row_group_fails_every_epochs_reads_of_it(tmp_path: Path, when: str) -> None:
    """Damaged before the dataset is made, the group fails to load in the parent (left to the reads, the others
    loaded); damaged after, the files changed and the workers open them again: either way every epoch's reads of
    its images raise, and those of the other groups read their pixels."""
    clear_cache()
    arrs = _pixels(8)
    path = write_dataset(list(arrs), tmp_path / "p", dim_order="CYX", images_per_group=4, progress=False)
    rg = pq.read_metadata(path / "index.parquet").row_group(1)
    at = min(rg.column(c).dictionary_page_offset or rg.column(c).data_page_offset for c in range(rg.num_columns))
    middle = at + sum(rg.column(c).total_compressed_size for c in range(rg.num_columns)) // 2
    if when == "before":
        flip_byte(path / "index.parquet", middle, 0xFF)
    ds = OMEArrowDataset.scan(path)
    data = OMEArrowTorchDataset(ds)
    assert _groups_loaded(path) == (2 if when == "before" else 3)
    if when == "after":
        flip_byte(path / "index.parquet", middle, 0xFF)
    loader = DataLoader(data, batch_size=4, num_workers=2, multiprocessing_context="fork")
    for _ in range(2):
        with pytest.raises(OMEArrowError):
            _epoch(loader)
    others = OMEArrowTorchDataset(ds.select([0, 1, 2, 3, 8, 9, 10, 11]))
    loader = DataLoader(others, batch_size=3, num_workers=2, multiprocessing_context="fork")
    for _ in range(2):
        assert np.array_equal(_epoch(loader), arrs[[0, 1, 2, 3, 8, 9, 10, 11]])


def test_an_overwrite_of_one_dataset_of_a_directory_stops_only_the_reads_of_its_images(tmp_path: Path) -> None:
    """Each read stats the directories holding its images alone, so reads of the other datasets go on."""
    a, b = _pixels(9), _pixels(10)
    write_dataset(list(a), tmp_path / "d" / "a", dim_order="CYX", progress=False)
    write_dataset(list(b), tmp_path / "d" / "b", dim_order="CYX", progress=False)
    images, tiles = OMEArrowTorchDataset(tmp_path / "d"), OMEArrowTorchDataset(tmp_path / "d", tile=(20, 24))
    assert len(images) == 2 * N and len(tiles) == 2 * N * 4
    write_dataset(list(a), tmp_path / "d" / "b", dim_order="CYX", mode="overwrite", progress=False)
    np.testing.assert_array_equal(images[list(range(N))].numpy(), a)
    np.testing.assert_array_equal(tiles[[4 * N - 1]].numpy(), a[-1:, :, 20:, 24:])
    for data, last in ((images, N), (tiles, 4 * N)):
        with pytest.raises(StorageError, match=f"{tmp_path / 'd' / 'b'} was overwritten"):
            data[[0, last]]


def test_a_table_of_records_written_again_stops_the_samples_never_pairs_new_pixels_with_old_targets(
    tmp_path: Path,
) -> None:
    """A table of OME-Arrow records (one image a row) rewritten under a DataLoader: sample 0 was image 30 with
    target 1 (the row planned), silently."""
    import os

    import pyarrow.parquet as arrow_pq
    from dataset_plates import records_table

    path = tmp_path / "cells.parquet"
    arrow_pq.write_table(records_table([1, 2, 3]), path, row_group_size=1)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))  # written earlier: a rewrite now gets another time
    data = OMEArrowTorchDataset(OMEArrowDataset.scan(path), target="label")
    pixels, target = data[0]
    assert int(pixels.float().max()) == int(target) == 1
    arrow_pq.write_table(records_table([30, 10, 20]), path, row_group_size=1)  # in place, as pyarrow writes
    with pytest.raises(StorageError, match="cells.parquet was overwritten after this OMEArrowTorchDataset") as info:
        data[0]
    assert info.value.errno == errno.ESTALE
    with pytest.raises(StorageError, match="was overwritten"):
        data[[1, 2]]
