"""The Ray Data engine (ome-arrow-ray), in local mode: rows of images decoded in map_batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from ome_arrow_core import OMEArrowDataset, SchemaError, write_dataset  # noqa: E402
from ome_arrow_ray import iter_torch_batches, read_dataset  # noqa: E402

N = 9
pytestmark = [
    # Ray warns about its own deprecated settings when it builds its data context; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    # Ray forks its local processes; JAX, when an earlier test imported it, warns at every fork.
    pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(2).integers(0, 65535, (N, 2, 12, 16), dtype=np.uint16)
    meta = {"label": list(range(N)), "well": [f"B{i % 3}" for i in range(N)]}
    out = write_dataset(list(arrs), tmp_path_factory.mktemp("ray") / "plate", dim_order="CYX", metadata=meta,
                        progress=False)
    return out, arrs


def test_rows_carry_images_and_metadata(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    rows = read_dataset(path, images_per_block=4).take_all()
    assert [r["label"] for r in rows] == list(range(N))
    assert rows[3]["well"] == "B0" and rows[3]["image"].dtype == np.uint16
    np.testing.assert_array_equal(np.stack([r["image"] for r in rows]), arrs)


def test_filter_selection_and_torch_batches(plate: tuple[Path, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    path, arrs = plate
    batches = list(iter_torch_batches(path, batch_size=2, filter={"well": "B1"}, c=1, roi=(2, 3, 8, 5), layout="YX"))
    labels = [int(v) for b in batches for v in b["label"]]
    assert labels == [1, 4, 7] and set(batches[0]) == {"image", "label"}
    images = torch.cat([b["image"] for b in batches])
    assert images.dtype == torch.uint16
    np.testing.assert_array_equal(images.numpy(), arrs[[1, 4, 7], 1, 3:8, 2:10])


def test_errors(plate: tuple[Path, np.ndarray]) -> None:
    path, _ = plate
    with pytest.raises(SchemaError, match="not in the dataset"):
        read_dataset(path, columns=["nope"])
    with pytest.raises(SchemaError, match="no images match"):
        read_dataset(OMEArrowDataset.scan(path), filter={"well": "Z"})
