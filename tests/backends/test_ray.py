"""The Ray Data engine (ome-arrow-ray) on a local two-node Ray cluster (ray.cluster_utils.Cluster).

Slow on a small machine (starting the nodes and their workers takes most of it): the tests
here are few and share one cluster; the datasource's logic is tested in-process in
test_ray_datasource.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from ray.data.datasource import ReadTask  # noqa: E402
from ray.data.expressions import col  # noqa: E402

from ome_arrow_core import OMEArrowDataset, write_dataset  # noqa: E402
from ome_arrow_core.errors import ChecksumError, DamagedFileError  # noqa: E402
from ome_arrow_ray import iter_torch_batches, read_dataset  # noqa: E402
from ome_arrow_ray.datasource import OMEArrowDatasource  # noqa: E402

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
    out = write_dataset(
        list(arrs), tmp_path_factory.mktemp("ray") / "plate", dim_order="CYX", metadata=meta, progress=False
    )
    return out, arrs


def test_read_tasks_run_on_both_nodes_with_pushdown(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2

    rows = read_dataset(path, images_per_block=2).take_all()
    assert sorted(r["label"] for r in rows) == list(range(N))
    for r in rows:
        assert r["image"].dtype == np.uint16 and r["well"] == f"B{r['label'] % 3}"
        np.testing.assert_array_equal(r["image"], arrs[r["label"]])
    # Each read task stamps the node it ran on (a wrapper around our read tasks). Where Ray puts
    # tasks is its own business, so each node is made to read the whole plate in turn.
    for node in [n["NodeID"] for n in ray.nodes() if n["Alive"]]:
        pinned = {"ray.io/node-id": node}  # a label every node carries
        where = ray.data.read_datasource(_node_stamped(path), override_num_blocks=N, label_selector=pinned)
        got = sorted(where.take_all(), key=lambda r: r["label"])
        assert [r["label"] for r in got] == list(range(N)) and {r["node"] for r in got} == {node}
        np.testing.assert_array_equal(np.stack([r["image"] for r in got]), arrs)
    picked = read_dataset(path, images_per_block=2).filter(expr=col("well") == "B1").select_columns(["label", "image"])
    got = sorted(picked.take_all(), key=lambda r: r["label"])
    assert [r["label"] for r in got] == [1, 4, 7] and set(got[0]) == {"label", "image"}
    np.testing.assert_array_equal(np.stack([r["image"] for r in got]), arrs[[1, 4, 7]])


def test_read_dataset_turns_resource_reservation_off_for_its_dataset_only(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    rows = read_dataset(path, images_per_block=2)
    assert rows.context.op_resource_reservation_enabled is False
    assert ray.data.DataContext.get_current().op_resource_reservation_enabled is True  # the global one is left alone
    got = sorted(rows.take_all(), key=lambda r: r["label"])
    np.testing.assert_array_equal(np.stack([r["image"] for r in got]), arrs)
    assert read_dataset(path, reserve_resources=True).context.op_resource_reservation_enabled is True


def test_blocks_stay_whole_unless_told_otherwise(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    rows = read_dataset(path, images_per_block=2).materialize()
    assert rows.num_blocks() == 5  # one block per read task: Ray is not asked to cut them into pieces
    got = sorted(rows.take_all(), key=lambda r: r["label"])
    np.testing.assert_array_equal(np.stack([r["image"] for r in got]), arrs)
    told = read_dataset(path, images_per_block=2, override_num_blocks=N).materialize()
    assert told.num_blocks() > 5 and sorted(r["label"] for r in told.take_all()) == list(range(N))


def test_batches_of_a_block_are_views_of_its_pixels(plate: tuple[Path, np.ndarray]) -> None:
    """The driver cuts batches out of a block without copying: the two batches of a 6-image block are
    adjacent slices of that block's one buffer (a per-batch copy would add ~0.1 s of driver CPU per 524 MB
    epoch, about what the driver spends now)."""
    path, arrs = plate
    rows = read_dataset(path, columns=["label"], images_per_block=6, batch_size=3)  # blocks of 6 and 3 images
    batches = list(rows.iter_batches(batch_size=3, batch_format="numpy"))
    assert sorted(len(b["label"]) for b in batches) == [3, 3, 3]
    for batch in batches:
        np.testing.assert_array_equal(batch["image"], arrs[batch["label"]])
    images = [b["image"] for b in batches]
    of_block = [x for x in images if isinstance(x.base, pa.Buffer) and x.base.size == 2 * x.nbytes]
    assert len(of_block) == 2, [None if x.base is None else type(x.base) for x in images]
    base = of_block[0].base.address
    assert of_block[1].base.address == base
    assert sorted(x.ctypes.data - base for x in of_block) == [0, of_block[0].nbytes]


def _node_stamped(path: Path) -> ray.data.Datasource:
    """Our datasource with a ``node`` column naming the node each read task ran on.

    Built in a function so that cloudpickle ships the classes by value to the workers,
    which cannot import this test module.
    """

    def stamp(read: Callable[[], Iterable[pa.Table]]) -> Iterator[pa.Table]:
        node = ray.get_runtime_context().get_node_id()
        for block in read():
            yield block.append_column("node", pa.array([node] * block.num_rows))

    class NodeStamped(ray.data.Datasource):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._inner = OMEArrowDatasource(
                OMEArrowDataset.scan(path), columns=["label"], image_column="image", view={}, images_per_block=1
            )

        def estimate_inmemory_data_size(self) -> int | None:
            return self._inner.estimate_inmemory_data_size()

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: object = None
        ) -> list[ReadTask]:
            tasks = self._inner.get_read_tasks(parallelism, per_task_row_limit, data_context)
            return [ReadTask(functools.partial(stamp, t.read_fn), t.metadata) for t in tasks]

    return NodeStamped()


def test_torch_batches_pass_ray_options_through(plate: tuple[Path, np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    path, arrs = plate
    batches = list(
        iter_torch_batches(
            path,
            batch_size=2,
            filter={"well": "B1"},
            c=1,
            roi=(2, 3, 8, 5),
            layout="YX",
            prefetch_batches=1,
            local_shuffle_buffer_size=3,
            local_shuffle_seed=0,
        )
    )
    labels = [int(v) for b in batches for v in b["label"]]
    assert sorted(labels) == [1, 4, 7] and set(batches[0]) == {"image", "label"}
    images = torch.cat([b["image"] for b in batches])
    assert images.dtype == torch.uint16
    np.testing.assert_array_equal(images.numpy(), arrs[labels][:, 1, 3:8, 2:10])
    epochs = []
    for epoch in (0, 1):  # random crops and a shuffle drawn from (seed, epoch), read on the cluster
        got = list(
            iter_torch_batches(
                path, batch_size=4, crop=(6, 6), random_crop=True, shuffle=True, seed=1, epoch=epoch, drop_last=False
            )
        )
        labels = [int(v) for b in got for v in b["label"]]
        assert sorted(labels) == list(range(N)) and got[0]["image"].shape[1:] == (2, 6, 6)
        epochs.append(torch.cat([b["image"] for b in got]).numpy()[np.argsort(labels)])
    assert not np.array_equal(epochs[0], epochs[1])  # new crops each epoch


def _damage(out: Path, arrs: np.ndarray, how: str) -> None:
    """Damage the plate at ``out`` ``how``: "flip" one pixel bit of image 5 (uncompressed chunks, so the
    bit is found as stored), or "truncate" its chunks file to half."""
    chunks = out / "chunks.parquet"
    raw = bytearray(chunks.read_bytes())
    if how == "flip":
        pattern = arrs[5, 1, 6].tobytes()
        at = raw.find(pattern)
        assert at >= 0 and raw.find(pattern, at + 1) < 0  # stored once, as is
        raw[at + 3] ^= 0x10
    else:
        del raw[len(raw) // 2 :]
    chunks.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damaged_files_raise_our_errors_through_ray(tmp_path: Path, how: str) -> None:
    # A fresh plate (files no worker has opened), damaged once the driver has planned the read:
    # the driver read its metadata and first image's shape, the read tasks meet the damage.
    arrs = np.random.default_rng(5).integers(0, 65535, (N, 2, 12, 16), dtype=np.uint16)
    out = write_dataset(
        list(arrs),
        tmp_path / how,
        dim_order="CYX",
        metadata={"label": list(range(N))},
        compression=None,
        progress=False,
    )
    rows = read_dataset(out, images_per_block=2)
    others = read_dataset(out, images_per_block=2).filter(expr=col("label") != 5)
    _damage(out, arrs, how)
    error = ChecksumError if how == "flip" else DamagedFileError
    with pytest.raises(error, match=r"chunks\.parquet") as raised:
        rows.take_all()
    assert isinstance(raised.value, ray.exceptions.RayTaskError)  # raised in a read task, re-raised by Ray
    if how == "flip":  # the other images still read right
        intact = others.take_all()
        assert sorted(r["label"] for r in intact) == [k for k in range(N) if k != 5]
        for r in intact:
            np.testing.assert_array_equal(r["image"], arrs[r["label"]])


def _nodes() -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n["Alive"]]


def test_a_plate_rewritten_between_reads_on_one_node_is_read_anew(tmp_path: Path) -> None:
    # Every read runs on one node (whose workers keep what they opened from task to task), so
    # that the second read meets the warm workers of the first; where on the node is Ray's business.
    old = np.random.default_rng(7).integers(0, 65535, (N, 2, 12, 16), dtype=np.uint16)
    new = np.random.default_rng(8).integers(0, 65535, (N, 2, 12, 16), dtype=np.uint16)
    made = [
        write_dataset(list(a), tmp_path / name, dim_order="CYX", metadata={"label": list(range(N))}, compression=None)
        for a, name in ((old, "plate"), (new, "other"))
    ]
    pinned = {"ray.io/node-id": _nodes()[-1]}

    def images() -> np.ndarray:
        rows = read_dataset(made[0], images_per_block=2, label_selector=pinned).take_all()
        return np.stack([r["image"] for r in sorted(rows, key=lambda r: r["label"])])

    for _ in range(2):
        np.testing.assert_array_equal(images(), old)
    for f in made[1].iterdir():  # the other plate's bytes through the same inodes
        with open(made[0] / f.name, "r+b") as dst:
            dst.write(f.read_bytes())
            dst.truncate()
    np.testing.assert_array_equal(images(), new)


@pytest.mark.parametrize(
    "options", [{}, {"images_per_block": 1}, {"images_per_block": 4, "shuffle": True, "seed": 2, "epoch": 1}]
)
def test_every_image_equals_the_source_on_the_cluster(
    plate: tuple[Path, np.ndarray], options: dict[str, object]
) -> None:
    path, arrs = plate
    rows = read_dataset(path, **options).take_all()  # (in whatever order the blocks come: Ray's business)
    assert sorted(r["label"] for r in rows) == list(range(N))
    for r in rows:
        assert r["image"].dtype == arrs.dtype
        np.testing.assert_array_equal(r["image"], arrs[r["label"]])


def test_images_of_several_dtypes_read_with_dtype(tmp_path: Path) -> None:
    from ome_arrow_core import SchemaError

    arrs = [np.arange(-16, 16, dtype=np.int8).reshape(2, 4, 4), np.full((2, 4, 4), 2.5, np.float32)]
    path = write_dataset(arrs, tmp_path / "m", dim_order="CYX", metadata={"label": [0, 1]}, progress=False)
    with pytest.raises(SchemaError, match=r"\['float32', 'int8'\].*pass dtype="):
        read_dataset(path)  # refused here: it failed in a read task, saying to pass a dtype= it did not take
    rows = read_dataset(path, dtype="float32").take_all()
    got = np.stack([r["image"] for r in sorted(rows, key=lambda r: r["label"])])
    np.testing.assert_array_equal(got, np.stack([a.astype(np.float32) for a in arrs]))
    batches = list(iter_torch_batches(path, batch_size=2, dtype="float64"))
    assert str(batches[0]["image"].dtype) == "torch.float64"
