"""A real two-process DDP run (torch.distributed, gloo, mp.spawn): every image read once per epoch across ranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
pytest.importorskip("ome_arrow_torch")

from ome_arrow_core import write_dataset  # noqa: E402

N, WORLD, EPOCHS = 23, 2, 2  # N odd: the ranks' shares differ by one
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning")]


def _rank(rank: int, path: str, store: str, out: str) -> None:
    """One DDP rank: its DataLoader (2 workers) reads its share; rank 0 writes what every rank saw."""
    from torch.utils.data import DataLoader

    from ome_arrow_torch import OMEArrowIterableDataset

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        ds = OMEArrowIterableDataset(path, target="label", batch_size=4, shuffle=True, seed=7)
        loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context="fork")
        arrs = np.load(Path(path).parent / "pixels.npy")
        seen = []
        for epoch in range(EPOCHS):
            ds.set_epoch(epoch)
            labels: list[int] = []
            for xb, yb in loader:
                for x, y in zip(xb.numpy(), yb.tolist()):
                    assert np.array_equal(x, arrs[y])  # the pixels of the image its label names
                    labels.append(y)
            seen.append(labels)
        everyone: list[object] = [None] * WORLD
        dist.all_gather_object(everyone, {"rank": dist.get_rank(), "len": len(ds), "seen": seen})
        if rank == 0:
            Path(out).write_text(json.dumps(everyone))
    finally:
        dist.destroy_process_group()


def test_two_ranks_read_every_image_once_per_epoch(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    arrs = np.random.default_rng(4).integers(0, 65535, (N, 2, 8, 10), dtype=np.uint16)
    path = write_dataset(
        list(arrs), tmp_path / "plate", dim_order="CYX", metadata={"label": list(range(N))}, progress=False
    )
    np.save(tmp_path / "pixels.npy", arrs)
    out = tmp_path / "seen.json"
    mp.spawn(_rank, args=(str(path), str(tmp_path / "pg"), str(out)), nprocs=WORLD, join=True)
    ranks = json.loads(out.read_text())
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert [r["len"] for r in ranks] == [3, 3]  # 12 and 11 samples: 3 batches of up to 4 each
    orders = []
    for epoch in range(EPOCHS):
        shares = [r["seen"][epoch] for r in ranks]
        assert sorted(len(s) for s in shares) == [11, 12]
        assert not set(shares[0]) & set(shares[1])  # no image on both ranks
        assert sorted(shares[0] + shares[1]) == list(range(N))  # every image, once
        orders.append(shares[0])
    assert orders[0] != orders[1]  # set_epoch reshuffles
