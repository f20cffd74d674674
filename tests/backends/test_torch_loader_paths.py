"""Every DataLoader path over OME-Arrow datasets (map-style batched reads, batch sampler, iterable) with 0 and 2
workers gives the core's pixels, epoch after epoch, and a damaged chunk raises a library error through them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from torch.utils.data import BatchSampler, DataLoader, RandomSampler  # noqa: E402

from ome_arrow_core import OMEArrowDataset, OMEArrowError, write_dataset  # noqa: E402
from ome_arrow_torch import OMEArrowIterableDataset, OMEArrowTorchDataset  # noqa: E402

N, B, EPOCHS = 23, 4, 3
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(14).integers(0, 65535, (N, 2, 12, 16), dtype=np.uint16)
    out = write_dataset(
        list(arrs),
        tmp_path_factory.mktemp("paths") / "plate",
        dim_order="CYX",
        metadata={"label": list(range(N))},
        progress=False,
    )
    return out, arrs


def _loader(kind: str, source: Any, workers: int, **options: Any) -> tuple[Any, DataLoader]:  # type: ignore[type-arg]
    """(dataset, loader) of one path; shuffled orders come from seeds, so they do not depend on ``workers``."""
    common: dict[str, Any] = {
        "num_workers": workers,
        "persistent_workers": workers > 0,
        "multiprocessing_context": "fork" if workers else None,
    }
    if kind == "iter":
        data: Any = OMEArrowIterableDataset(source, batch_size=B, shuffle=True, seed=3, **options)
        return data, DataLoader(data, batch_size=None, **common)
    data = OMEArrowTorchDataset(source, **options)
    sampler = RandomSampler(data, generator=torch.Generator().manual_seed(5))
    if kind == "map":
        return data, DataLoader(data, batch_size=B, sampler=sampler, **common)
    return data, DataLoader(data, sampler=BatchSampler(sampler, B, drop_last=False), batch_size=None, **common)


def _epochs(data: Any, loader: Any) -> Iterator[list[tuple[np.ndarray, list[int]]]]:
    """Each epoch's batches as (pixels, labels), copied out of the loader's buffers."""
    for epoch in range(EPOCHS):
        data.set_epoch(epoch)
        yield [(x.numpy().copy(), y.tolist()) for x, y in loader]


@pytest.mark.parametrize("kind", ["map", "mapb", "iter"])
def test_two_workers_give_the_same_batches_as_none_and_as_the_core(plate: tuple[Path, np.ndarray], kind: str) -> None:
    path, arrs = plate
    ds = OMEArrowDataset.scan(path)
    got = {}
    for workers in (0, 2):
        data, loader = _loader(kind, path, workers, layout="CYX", target="label")
        got[workers] = list(_epochs(data, loader))
        del loader
    orders = []
    for epoch in range(EPOCHS):
        assert len(got[0][epoch]) == len(got[2][epoch]) == -(-N // B)
        labels = []
        for (x0, y0), (x2, y2) in zip(got[0][epoch], got[2][epoch]):
            assert y0 == y2 and x0.dtype == x2.dtype == np.uint16
            np.testing.assert_array_equal(x0, x2)
            np.testing.assert_array_equal(x2, ds.read(y2, layout="CYX"))
            np.testing.assert_array_equal(x2, arrs[y2])
            labels += y2
        assert sorted(labels) == list(range(N))  # every image once per epoch
        orders.append(labels)
    assert orders[0] != orders[1]  # a new order each epoch (seeded)


@pytest.mark.parametrize("kind", ["map", "mapb", "iter"])
def test_random_crops_are_seeded_and_the_same_with_two_workers(plate: tuple[Path, np.ndarray], kind: str) -> None:
    path, arrs = plate
    got = {}
    for workers in (0, 2):
        data, loader = _loader(kind, path, workers, layout="CYX", target="label", crop=(5, 7), random_crop=True)
        got[workers] = list(_epochs(data, loader))
        del loader
    where: dict[int, list[tuple[int, int]]] = {}
    for epoch in range(EPOCHS):
        for (x0, y0), (x2, y2) in zip(got[0][epoch], got[2][epoch]):
            assert y0 == y2
            np.testing.assert_array_equal(x0, x2)
            for crop, k in zip(x2, y2):
                # the crop is a window of image k (random pixels: exactly one window matches)
                hits = [
                    (y, x)
                    for y in range(12 - 5 + 1)
                    for x in range(16 - 7 + 1)
                    if np.array_equal(arrs[k][:, y : y + 5, x : x + 7], crop)
                ]
                assert len(hits) == 1
                where.setdefault(k, []).append(hits[0])
    assert any(len(set(spots)) > 1 for spots in where.values())  # crops move between epochs


def _damage(path: Path, pixels: np.ndarray) -> None:
    """Flip one byte inside the stored pixels of ``pixels`` (a chunk of random values: found by its bytes)."""
    raw = pixels.tobytes()
    files = [f for f in path.rglob("*.parquet") if raw[:64] in f.read_bytes()]
    assert len(files) == 1
    data = bytearray(files[0].read_bytes())
    at = data.index(raw[:64]) + 40
    data[at] ^= 0xFF
    files[0].write_bytes(bytes(data))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("kind", ["map", "mapb", "iter"])
def test_a_damaged_chunk_in_a_batch_raises_through_the_loader(
    plate: tuple[Path, np.ndarray], tmp_path: Path, kind: str, workers: int
) -> None:
    arrs = plate[1]
    copy = tmp_path / "plate"
    write_dataset(list(arrs), copy, dim_order="CYX", metadata={"label": list(range(N))}, progress=False)
    _damage(copy, arrs[9, 1])
    loader = _loader(kind, copy, workers, layout="CYX", target="label")[1]
    seen: list[int] = []
    with pytest.raises(OMEArrowError) as err:
        for x, y in loader:
            np.testing.assert_array_equal(x.numpy(), arrs[y.tolist()])  # batches before it are right
            seen += y.tolist()
    assert 9 not in seen
    assert "checksum" in str(err.value).lower() or "damaged" in str(err.value).lower()


@pytest.mark.parametrize("kind", ["map", "mapb"])
def test_batches_of_differently_sized_images_fill_pooled_buffers_with_their_pixels(tmp_path: Path, kind: str) -> None:
    """Each batch sizes its worker's pooled buffer from its own images (no image opened first): batches of
    small and large images, alternating, reuse the same slots and still hold exactly their pixels."""
    rng = np.random.default_rng(7)
    arrs = [rng.integers(0, 65535, (2, 8, 10) if i % 2 else (2, 12, 16), dtype=np.uint16) for i in range(16)]
    path = write_dataset(arrs, tmp_path / "mixed", dim_order="CYX", metadata={"label": list(range(16))}, progress=False)
    # even images large, odd ones small; batch j goes to worker j % 2, so each worker reads both sizes
    batches = [[i, i + 2, i + 4, i + 6] for i in (0, 8, 1, 9)]
    data = OMEArrowTorchDataset(path, target="label")
    common: dict[str, Any] = {"num_workers": 2, "persistent_workers": True, "multiprocessing_context": "fork"}
    if kind == "map":
        loader: DataLoader = DataLoader(data, batch_sampler=batches, **common)  # type: ignore[type-arg]
    else:
        loader = DataLoader(data, sampler=batches, batch_size=None, **common)
    for _ in range(3):
        got = [(x.numpy().copy(), y.tolist()) for x, y in loader]
        assert [y for _, y in got] == batches
        for x, y in got:
            np.testing.assert_array_equal(x, np.stack([arrs[k] for k in y]))
