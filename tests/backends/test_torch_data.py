"""PyTorch data loading (ome_arrow_torch.data): map-style and sharded iterable datasets."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from torch.utils.data import DataLoader  # noqa: E402

from ome_arrow_core import DTypeError, OMEArrowDataset, SchemaError, SelectionError, write_dataset  # noqa: E402
from ome_arrow_core.errors import ArgumentError, SelectionTypeError  # noqa: E402
from ome_arrow_torch import OMEArrowIterableDataset, OMEArrowTorchDataset, shard_indices  # noqa: E402

CUDA = torch.cuda.is_available()
N = 22
# DataLoader workers are forked; JAX, when an earlier test imported it, warns at every fork.
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    arrs = rng.integers(0, 65535, (N, 2, 20, 24), dtype=np.uint16)
    meta = {"label": list(range(N)), "well": [f"W{i % 4}" for i in range(N)]}
    out = write_dataset(
        list(arrs),
        tmp_path_factory.mktemp("torch") / "plate",
        dim_order="CYX",
        metadata=meta,
        chunk_shape=(10, 12),
        progress=False,
    )
    return out, arrs


def _loader(ds: object, **kw: object) -> DataLoader:  # type: ignore[type-arg]
    if kw.get("num_workers"):
        kw.setdefault("multiprocessing_context", "fork")
    return DataLoader(ds, **kw)  # type: ignore[arg-type]


def test_import_does_not_load_torch_data_module() -> None:
    import subprocess
    import sys

    code = "import sys, ome_arrow_torch; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )


# -- map-style ------------------------------------------------------------------------------------
def test_map_style_items_keep_dtype_and_targets(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label")
    assert len(ds) == N
    x, y = ds[5]
    assert x.dtype == torch.uint16 and tuple(x.shape) == (2, 20, 24) and y == 5
    np.testing.assert_array_equal(x.numpy(), arrs[5])
    both = OMEArrowTorchDataset(OMEArrowDataset.scan(path), target=["label", "well"], c=1, layout="YX")
    assert both[3][1] == {"label": 3, "well": "W3"} and tuple(both[3][0].shape) == (20, 24)
    assert len(OMEArrowTorchDataset(path, filter={"well": "W1"})) == 6


@pytest.mark.parametrize("workers", [0, 2])
def test_map_style_dataloader(plate: tuple[Path, np.ndarray], workers: int) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label")
    loader = _loader(
        ds,
        batch_size=4,
        num_workers=workers,
        persistent_workers=workers > 0,
        shuffle=True,
        generator=torch.Generator().manual_seed(3),
    )
    for _ in range(2):  # persistent workers serve a second epoch
        seen = []
        for xb, yb in loader:
            assert xb.dtype == torch.uint16 and xb.shape[1:] == (2, 20, 24)
            for x, y in zip(xb, yb.tolist()):
                np.testing.assert_array_equal(x.numpy(), arrs[y])
                seen.append(y)
        assert sorted(seen) == list(range(N))


def test_tiles_crops_and_transforms(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    tiles = OMEArrowTorchDataset(path, tile=(8, 10), c=0, layout="YX")
    assert len(tiles) == N * 2 * 2  # full 8x10 tiles of 20x24; the remainders are left out
    np.testing.assert_array_equal(tiles[4 * 7 + 3].numpy(), arrs[7][0, 8:16, 10:20])
    centre = OMEArrowTorchDataset(path, crop=(10, 10))
    np.testing.assert_array_equal(centre[1].numpy(), arrs[1][:, 5:15, 7:17])
    rnd = OMEArrowTorchDataset(path, crop=(6, 6), random_crop=True, seed=1)
    a = rnd[2]
    assert torch.equal(a, rnd[2])  # the same (seed, epoch, sample): the same crop
    rnd.set_epoch(1)
    other = [rnd[i] for i in range(N)]
    rnd.set_epoch(0)
    assert any(not torch.equal(o, rnd[i]) for i, o in enumerate(other))
    scaled = OMEArrowTorchDataset(path, transform=lambda x: x.float() / 65535.0)
    assert scaled[0].dtype == torch.float32 and float(scaled[0].max()) <= 1.0
    batch = DataLoader(tiles, batch_size=5)
    assert next(iter(batch)).shape == (5, 8, 10)
    with pytest.raises(SelectionError, match="only one of"):
        OMEArrowTorchDataset(path, tile=(4, 4), crop=(4, 4))
    with pytest.raises(SelectionError, match="larger than image"):
        OMEArrowTorchDataset(path, crop=(40, 4))
    with pytest.raises(SelectionError, match=r"tile \(40, 4\) \(h, w\) is larger than image 0 \(20x24\)"):
        OMEArrowTorchDataset(path, tile=(40, 4))  # no tile fits: no sample, an empty loader, before
    for bad in ({"tile": (4.5, 4)}, {"crop": (4, 4.0)}, {"roi": (0, 0, 4.9, 4)}, {"roi": (0, 0, 4)}):
        with pytest.raises(SelectionError, match="ints"):  # refused, not truncated
            OMEArrowTorchDataset(path, **bad)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="target"):
        OMEArrowTorchDataset(path, target="nope")
    with pytest.raises(ArgumentError, match=r"random_crop=True needs crop=\(h, w\)"):  # whole images, silently
        OMEArrowTorchDataset(path, random_crop=True)
    for bad_seed in (-1, 1.5):  # -1 failed at the first read (numpy's error), 1.5 was truncated
        with pytest.raises(ArgumentError, match="seed must be an int >= 0"):
            OMEArrowTorchDataset(path, crop=(4, 4), random_crop=True, seed=bad_seed)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="transform must be a function"):  # a TypeError at the first read
        OMEArrowTorchDataset(path, transform="float")  # type: ignore[arg-type]
    for bad_epoch in (-1, 1.5):  # -1 failed in the workers' reads (numpy's error), 1.5 was truncated
        with pytest.raises(ArgumentError, match="set_epoch takes an int >= 0"):
            rnd.set_epoch(bad_epoch)  # type: ignore[arg-type]
    for bad_size in ({"batch_size": 0}, {"batch_size": 8.5}, {"read_size": 0}):  # read_size=0 was read as 1
        with pytest.raises(ArgumentError, match="must be an int >= 1"):
            OMEArrowIterableDataset(path, **bad_size)  # type: ignore[arg-type]


# -- iterable, sharded --------------------------------------------------------------------------------
def test_shard_indices_partition() -> None:
    for n, world in ((10, 3), (7, 7), (5, 8)):
        parts = [shard_indices(n, shuffle=True, seed=4, epoch=2, rank=r, world_size=world) for r in range(world)]
        flat = np.concatenate(parts)
        assert sorted(flat.tolist()) == list(range(n))
    even = [shard_indices(10, shuffle=False, seed=0, epoch=0, rank=r, world_size=3, drop_last=True) for r in range(3)]
    assert {len(p) for p in even} == {3}
    with pytest.raises(ValueError):
        shard_indices(4, shuffle=False, seed=0, epoch=0, rank=3, world_size=3)


def _labels(ds: OMEArrowIterableDataset, workers: int, **kw: object) -> list[int]:
    loader = _loader(ds, batch_size=None if ds.batch_size else 3, num_workers=workers, **kw)
    out: list[int] = []
    for xb, yb in loader:
        assert xb.dtype == torch.uint16
        out += yb.tolist()
    return out


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("batch_size", [None, 4])
def test_ranks_and_workers_read_every_sample_once(
    plate: tuple[Path, np.ndarray], workers: int, batch_size: int | None
) -> None:
    path, _arrs = plate
    seen: list[int] = []
    for rank in range(3):
        ds = OMEArrowIterableDataset(
            path, target="label", shuffle=True, seed=7, rank=rank, world_size=3, batch_size=batch_size, read_size=5
        )
        got = _labels(ds, workers)
        assert len(got) == len(ds.shard())
        seen += got
    assert sorted(seen) == list(range(N))


def test_batches_are_tensors_with_dtype_and_values(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowIterableDataset(path, batch_size=5, c=1, roi=(2, 3, 8, 6), layout="YX")
    assert len(ds) == 5
    batches = list(_loader(ds, batch_size=None, num_workers=2))
    assert [b.shape[0] for b in batches] == [5, 5, 5, 5, 2]
    np.testing.assert_array_equal(torch.cat(batches).numpy(), arrs[:, 1, 3:9, 2:10])
    assert all(b.dtype == torch.uint16 for b in batches)
    last = OMEArrowIterableDataset(path, batch_size=5, drop_last=True)
    assert len(last) == 4 and len(list(last)) == 4


def test_shuffle_is_seeded_and_follows_set_epoch_in_persistent_workers(plate: tuple[Path, np.ndarray]) -> None:
    path, _ = plate
    ds = OMEArrowIterableDataset(path, target="label", shuffle=True, seed=11, batch_size=4)
    loader = _loader(ds, batch_size=None, num_workers=2, persistent_workers=True)
    orders = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        orders.append([y for _, yb in loader for y in yb.tolist()])
    assert all(sorted(o) == list(range(N)) for o in orders)
    assert orders[0] != orders[1] != orders[2]
    single = OMEArrowIterableDataset(path, target="label", shuffle=True, seed=11, batch_size=4)
    single.set_epoch(1)
    assert _labels(single, 0) == orders[1]  # the same order whatever the number of workers
    again = OMEArrowIterableDataset(path, target="label", shuffle=True, seed=11, batch_size=4)
    again.set_epoch(1)
    assert _labels(again, 0) == orders[1]


def test_rank_from_torch_distributed(plate: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("this torch build has no torch.distributed")
    path, _ = plate
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        ds = OMEArrowIterableDataset(path)
        assert ds._dist() == (0, 1) and len(ds) == N
    finally:
        dist.destroy_process_group()
    with pytest.raises(ValueError, match="both rank and world_size"):
        OMEArrowIterableDataset(path, rank=0)


def test_workers_take_over_the_parents_opened_files(plate: tuple[Path, np.ndarray]) -> None:
    """A forked worker reads through the dataset its parent opened (the same files, unchanged), in a process of its
    own, and reads the right pixels."""
    path, arrs = plate
    from ome_arrow_core import default_registry
    from ome_arrow_core.typed_chunk import opening

    parent = opening.open_dataset(path, default_registry())

    class Probe(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            got = OMEArrowDataset.scan(path).read([0])
            yield (os.getpid(), opening.open_dataset(path, default_registry()) is parent, got)

    got = list(_loader(Probe(), batch_size=None, num_workers=2))
    assert len({pid for pid, _, _ in got} | {os.getpid()}) == 3 and all(shared for _, shared, _ in got)
    assert all(np.array_equal(x[0], arrs[0]) for _, _, x in got)


@pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning")
def test_pin_memory(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    for ds, bs in ((OMEArrowIterableDataset(path, batch_size=4), None), (OMEArrowTorchDataset(path), 4)):
        batches = list(_loader(ds, batch_size=bs, num_workers=2, pin_memory=True))
        np.testing.assert_array_equal(torch.cat(batches).numpy(), arrs)
        if CUDA:
            assert all(b.is_pinned() for b in batches)


def test_a_map_style_dataset_sends_workers_nothing_per_image(tmp_path: Path) -> None:
    """Spawned DataLoader workers get the dataset pickled: without tiles its own state does not grow with
    the image count (the core dataset's pickle is its own business), and it still reads the right images."""
    extra = {}
    for n in (4, 400):
        arrs = np.arange(n * 4, dtype=np.uint16).reshape(n, 1, 2, 2)
        path = write_dataset(list(arrs), tmp_path / f"p{n}", dim_order="CYX", progress=False)
        ds = OMEArrowDataset.scan(path)
        data = OMEArrowTorchDataset(ds)
        extra[n] = len(pickle.dumps(data)) - len(pickle.dumps(ds))
        back = pickle.loads(pickle.dumps(data))
        assert len(back) == n
        np.testing.assert_array_equal(back[n - 1].numpy(), arrs[n - 1])
        np.testing.assert_array_equal(back[[2, 0]].numpy(), arrs[[2, 0]])
    assert extra[400] == extra[4]


@pytest.mark.parametrize("roi", [None, (3, 2, 8, 9)])
def test_batches_of_samples_are_checked_and_read_together(plate: tuple[Path, np.ndarray], roi: Any) -> None:
    """One sample per image: a batch's indices are checked at once (an out-of-range one raises IndexError naming
    it, negative ones count from the end) and read with the one view (``roi``) of every image."""
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, roi=roi)
    want = arrs if roi is None else arrs[:, :, roi[1] : roi[1] + roi[3], roi[0] : roi[0] + roi[2]]
    got = ds.__getitems__([3, -1, 0, -N])
    assert np.array_equal(torch.stack(got).numpy(), want[[3, N - 1, 0, 0]])
    assert np.array_equal(ds[[5, 2]].numpy(), want[[5, 2]])
    for bad in ([0, N], [-N - 1, 1]):
        with pytest.raises(IndexError, match=f"sample {bad[0] if bad[0] < 0 else bad[1]} is out of range"):
            ds.__getitems__(bad)


@pytest.mark.parametrize("options", [{}, {"tile": (10, 12)}, {"crop": (8, 8), "random_crop": True}])
def test_sample_indices_are_integers_never_truncated(plate: tuple[Path, np.ndarray], options: dict[str, Any]) -> None:
    """A 0-d tensor or array is one sample, a slice a batch; a float, a bool or a str is refused (``int()`` read
    sample 1 for ``1.5``, ``True`` or ``"1"``, and a 0-d tensor raised "'int' object is not iterable")."""
    path, _ = plate
    ds = OMEArrowTorchDataset(path, **options)
    assert torch.equal(ds[torch.tensor(3)], ds[3]) and torch.equal(ds[np.array(3)], ds[3])
    assert torch.equal(ds[1:6:2], ds[[1, 3, 5]]) and torch.equal(ds[-2:], ds[[len(ds) - 2, len(ds) - 1]])
    for bad in (1.0, True, "1", "12", np.float64(1), torch.tensor(1.0), None):
        with pytest.raises(SelectionTypeError, match="a sample index must be an integer"):
            ds[bad]  # type: ignore[index]
    for bad_list in ([1.5], [0, True], torch.tensor([1.0, 2.0]), np.array([0.5])):
        with pytest.raises(SelectionTypeError, match="a sample index must be an integer, got"):
            ds[bad_list]  # type: ignore[index]
        with pytest.raises(SelectionTypeError, match="a sample index must be an integer, got"):
            ds.__getitems__(bad_list)  # type: ignore[arg-type]
    with pytest.raises(SelectionError, match="one axis"):
        ds[np.zeros((2, 2), np.int64)]  # type: ignore[index]
    with pytest.raises(SelectionError, match=f"sample {len(ds)} is out of range"):
        ds[len(ds)]


def test_images_of_several_dtypes_read_as_one_batch_with_dtype(tmp_path: Path) -> None:
    arrs = [np.arange(-16, 16, dtype=np.int8).reshape(2, 4, 4), np.full((2, 4, 4), 2.5, np.float32)]
    path = write_dataset(arrs, tmp_path / "m", dim_order="CYX", progress=False)
    with pytest.raises(SchemaError, match="pass dtype="):  # what the message says to do: the datasets took no dtype
        next(iter(DataLoader(OMEArrowTorchDataset(path), batch_size=2)))
    want = torch.from_numpy(np.stack([a.astype(np.float32) for a in arrs]))
    for workers in (0, 2):
        mapped = DataLoader(OMEArrowTorchDataset(path, dtype="float32"), batch_size=2, num_workers=workers)
        assert torch.equal(next(iter(mapped)), want)
        stream = OMEArrowIterableDataset(path, batch_size=2, dtype="float32")
        assert torch.equal(next(iter(DataLoader(stream, batch_size=None, num_workers=workers))), want)
    with pytest.raises(
        DTypeError, match="uint8"
    ):  # -16 does not fit  # checked as tensor_view(dtype=) is, unless casting="unsafe"
        OMEArrowTorchDataset(path, dtype="uint8")[[0, 1]]


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def test_spawned_workers_read_the_samples_and_a_transform_they_cannot_get_is_named(
    plate: tuple[Path, np.ndarray],
) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, transform=_as_float, target="label")
    loader = DataLoader(ds, batch_size=8, num_workers=1, multiprocessing_context="spawn")
    xs, ys = zip(*loader)
    assert torch.cat(ys).tolist() == list(range(N))
    np.testing.assert_array_equal(torch.cat(xs).numpy(), arrs.astype(np.float32))
    # a lambda: pickle's error ("attribute lookup <lambda> ... failed") named no argument
    bad = OMEArrowTorchDataset(path, transform=lambda x: x.float())
    with pytest.raises(ArgumentError, match=r"transform=<function .*<lambda>.* 'spawn' .* cannot be pickled"):
        next(iter(DataLoader(bad, batch_size=8, num_workers=1, multiprocessing_context="spawn")))


def test_a_transform_defined_in_an_interactive_session_is_named_before_a_spawned_worker_fails(
    plate: tuple[Path, np.ndarray],
) -> None:
    # the worker could not import it from a notebook's __main__: "DataLoader worker exited unexpectedly" said only
    import subprocess
    import sys

    code = (
        "from torch.utils.data import DataLoader\n"
        "from ome_arrow_torch import OMEArrowTorchDataset\n"
        "def scale(t):\n    return t.float()\n"
        f"ds = OMEArrowTorchDataset({str(plate[0])!r}, transform=scale)\n"
        "try:\n    next(iter(DataLoader(ds, batch_size=4, num_workers=1, multiprocessing_context='spawn')))\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    assert got.startswith("ArgumentError transform=<function scale") and "interactive session" in got, got
