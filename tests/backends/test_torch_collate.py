"""Map-style batches (ome_arrow_torch.collate): default_collate gives back the batch read, without a copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from torch.utils.data import DataLoader, default_collate  # noqa: E402

from ome_arrow_core import write_dataset  # noqa: E402
from ome_arrow_torch import OMEArrowTorchDataset  # noqa: E402
from ome_arrow_torch.collate import BatchRow, collate_rows, rows_of  # noqa: E402
from ome_arrow_torch.pool import MAX_SLOTS  # noqa: E402

N = 21
pytestmark = pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(6).integers(0, 65535, (N, 2, 14, 10), dtype=np.uint16)
    out = write_dataset(
        list(arrs),
        tmp_path_factory.mktemp("collate") / "plate",
        dim_order="CYX",
        metadata={"label": list(range(N))},
        progress=False,
    )
    return out, arrs


def _segment(x: torch.Tensor) -> int:
    """Where ``x``'s shared-memory segment is mapped in this process: one address per pooled slot."""
    return x.data_ptr()


def test_whole_batches_come_back_uncopied_and_anything_else_is_stacked() -> None:
    batch = torch.arange(24, dtype=torch.int32).reshape(4, 6)
    rows = rows_of(batch)
    assert all(type(r) is BatchRow for r in rows)
    assert default_collate(rows) is batch  # all its rows, in order: the batch itself
    for picked in (rows[:3], rows[::-1], [rows[0], rows[0], rows[1], rows[2]], rows_of(batch.clone())[:2] + rows[2:]):
        out = default_collate(picked)
        assert type(out) is torch.Tensor and out.data_ptr() != batch.data_ptr()
        np.testing.assert_array_equal(out.numpy(), np.stack([r.numpy() for r in picked]))
    pairs = default_collate([(r, i) for i, r in enumerate(rows)])  # (image, target) samples
    assert pairs[0] is batch and pairs[1].tolist() == [0, 1, 2, 3]
    assert collate_rows([batch[1], batch[2]]).tolist() == batch[1:3].tolist()  # plain tensors too
    assert type(rows[0] + 1) is torch.Tensor  # operations give plain tensors


@pytest.mark.parametrize("workers", [0, 2])
def test_map_style_loader_reuses_pooled_batches(plate: tuple[Path, np.ndarray], workers: int) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label")
    loader = DataLoader(
        ds,
        batch_size=2,
        num_workers=workers,
        persistent_workers=workers > 0,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
        multiprocessing_context="fork" if workers else None,
    )
    segments, seen = set(), []
    for _ in range(3):
        for xb, yb in loader:
            assert type(xb) is torch.Tensor and xb.dtype == torch.uint16
            np.testing.assert_array_equal(xb.numpy(), arrs[yb.numpy()])
            seen += yb.tolist()
            if workers:
                segments.add(_segment(xb))
    assert sorted(seen) == sorted(list(range(N)) * 3)
    if workers:  # 33 batches; a fresh segment per batch (default_collate's copy) would give 33
        assert len(segments) <= 2 * MAX_SLOTS


def test_held_map_style_batches_keep_their_values(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label", c=1, layout="YX")
    loader = DataLoader(
        ds,
        batch_size=1,
        num_workers=2,
        persistent_workers=True,
        shuffle=True,
        generator=torch.Generator().manual_seed(2),
        multiprocessing_context="fork",
    )
    kept = [b for _ in range(3) for b in loader]  # 63 batches held: far more than the pools' slots
    assert len(kept) == 3 * N
    for xb, yb in kept:
        np.testing.assert_array_equal(xb[0].numpy(), arrs[int(yb[0]), 1])


def _listed(batch: list[object]) -> list[object]:
    return batch


def test_other_collates_get_rows_that_stay_correct(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    ds = OMEArrowTorchDataset(path, target="label")
    loader = DataLoader(
        ds, batch_size=3, num_workers=2, collate_fn=_listed, persistent_workers=True, multiprocessing_context="fork"
    )
    kept = [b for _ in range(3) for b in loader]  # rows reach the main process outside the pool's hand-over
    for batch in kept:
        for x, y in batch:  # type: ignore[misc]
            assert type(x) is torch.Tensor
            np.testing.assert_array_equal(x.numpy(), arrs[y])
    scaled = OMEArrowTorchDataset(path, transform=lambda x: x.float() / 2)
    xb = next(iter(DataLoader(scaled, batch_size=4)))
    assert xb.dtype == torch.float32
    np.testing.assert_array_equal(xb.numpy(), arrs[:4].astype(np.float32) / 2)
