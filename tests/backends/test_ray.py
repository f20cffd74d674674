"""The Ray Data engine (ome-arrow-ray) on a local two-node Ray cluster (ray.cluster_utils.Cluster).

Slow on a small machine (starting the nodes and their workers takes most of it): the tests
here are few and share one cluster; the datasource's logic is tested in-process in
test_ray_datasource.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from ome_arrow_ray import iter_torch_batches, read_dataset  # noqa: E402
from ray.data.expressions import col  # noqa: E402

from ome_arrow_core import write_dataset  # noqa: E402

N = 9
pytestmark = [
    pytest.mark.slow,
    # Ray warns about its own deprecated settings when it builds its data context; not ours to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    # Ray forks its local processes; JAX, when an earlier test imported it, warns at every fork.
    pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def two_nodes() -> Iterator[None]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(2).integers(0, 65535, (N, 2, 12, 16), dtype=np.uint16)
    meta = {"label": list(range(N)), "well": [f"B{i % 3}" for i in range(N)]}
    out = write_dataset(list(arrs), tmp_path_factory.mktemp("ray") / "plate", dim_order="CYX", metadata=meta,
                        progress=False)
    return out, arrs


def test_read_tasks_run_on_both_nodes_with_pushdown(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2

    def _node(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # nested: pickled by value for the workers
        node = ray.get_runtime_context().get_node_id()
        return {"label": batch["label"], "node": np.array([node] * len(batch["label"]))}

    rows = read_dataset(path, images_per_block=2).take_all()
    assert sorted(r["label"] for r in rows) == list(range(N))
    for r in rows:
        assert r["image"].dtype == np.uint16 and r["well"] == f"B{r['label'] % 3}"
        np.testing.assert_array_equal(r["image"], arrs[r["label"]])
    where = read_dataset(path, images_per_block=1, columns=["label"]).map_batches(_node, batch_size=1).take_all()
    assert sorted(r["label"] for r in where) == list(range(N))
    assert len({r["node"] for r in where}) == 2  # read tasks ran on both nodes
    picked = read_dataset(path, images_per_block=2).filter(expr=col("well") == "B1").select_columns(["label", "image"])
    got = sorted(picked.take_all(), key=lambda r: r["label"])
    assert [r["label"] for r in got] == [1, 4, 7] and set(got[0]) == {"label", "image"}
    np.testing.assert_array_equal(np.stack([r["image"] for r in got]), arrs[[1, 4, 7]])


def test_torch_batches_pass_ray_options_through(plate: tuple[Path, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    path, arrs = plate
    batches = list(iter_torch_batches(path, batch_size=2, filter={"well": "B1"}, c=1, roi=(2, 3, 8, 5), layout="YX",
                                      prefetch_batches=1, local_shuffle_buffer_size=3, local_shuffle_seed=0))
    labels = [int(v) for b in batches for v in b["label"]]
    assert sorted(labels) == [1, 4, 7] and set(batches[0]) == {"image", "label"}
    images = torch.cat([b["image"] for b in batches])
    assert images.dtype == torch.uint16
    np.testing.assert_array_equal(images.numpy(), arrs[labels][:, 1, 3:8, 2:10])
    epochs = []
    for epoch in (0, 1):  # random crops and a shuffle drawn from (seed, epoch), read on the cluster
        got = list(iter_torch_batches(path, batch_size=4, crop=(6, 6), random_crop=True, shuffle=True, seed=1,
                                      epoch=epoch, drop_last=False))
        labels = [int(v) for b in got for v in b["label"]]
        assert sorted(labels) == list(range(N)) and got[0]["image"].shape[1:] == (2, 6, 6)
        epochs.append(torch.cat([b["image"] for b in got]).numpy()[np.argsort(labels)])
    assert not np.array_equal(epochs[0], epochs[1])  # new crops each epoch
