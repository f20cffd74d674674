"""DataLoader's defaults (``persistent_workers=False``): new workers every epoch read the files' pixels, share the
checks earlier workers passed, and read a dataset replaced between epochs as its new files (or raise), never as the
old ones or a mix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ome_arrow_torch")

from torch.utils.data import DataLoader  # noqa: E402

from ome_arrow_core import OMEArrowDataset, write_dataset  # noqa: E402
from ome_arrow_core.errors import OMEArrowError  # noqa: E402
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset  # noqa: E402
from ome_arrow_torch import OMEArrowTorchDataset  # noqa: E402

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
def test_a_dataset_replaced_between_epochs_reads_its_new_pixels(tmp_path: Path, shape: tuple[int, ...]) -> None:
    clear_cache()
    old, new = _pixels(1), _pixels(2, shape)
    path = write_dataset(list(old), tmp_path / "p", dim_order="CYX", progress=False)
    data = OMEArrowTorchDataset(OMEArrowDataset.scan(path))
    loader = DataLoader(data, batch_size=5, num_workers=2, multiprocessing_context="fork")
    assert np.array_equal(_epoch(loader), old)
    write_dataset(list(new), path, dim_order="CYX", progress=False, mode="overwrite")
    try:
        got = _epoch(loader)
    except OMEArrowError as exc:  # a clear error is allowed; stale or mixed pixels are not
        assert str(path) in str(exc) or "dataset" in str(exc)
        return
    assert np.array_equal(got, new)
