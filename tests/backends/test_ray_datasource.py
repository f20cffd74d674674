"""OMEArrowDatasource's read tasks, run in this process (no Ray cluster): ranges, pushdown, shuffles, crops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from ray.data.expressions import col

from ome_arrow_core import OMEArrowDataset, SelectionError, write_dataset
from ome_arrow_core.errors import ArgumentError, ArgumentTypeError
from ome_arrow_ray import OMEArrowDatasource, datasource, read_dataset
from ome_arrow_ray.sampling import epoch_order

N = 11
VIEW = {"t": None, "z": None, "c": None, "roi": None, "layout": None, "channel_policy": "error"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = np.random.default_rng(5).integers(0, 65535, (N, 2, 18, 20), dtype=np.uint16)
    meta = {"label": list(range(N)), "well": [f"C{i % 3}" for i in range(N)]}
    out = write_dataset(
        list(arrs), tmp_path_factory.mktemp("raysrc") / "plate", dim_order="CYX", metadata=meta, progress=False
    )
    return out, arrs


def _source(path: Path, **kw: Any) -> OMEArrowDatasource:
    kw.setdefault("view", VIEW)
    return OMEArrowDatasource(OMEArrowDataset.scan(path), columns=["label", "well"], image_column="image", **kw)


def _run(source: Any, parallelism: int = 8) -> list[Any]:
    """Every read task's blocks, concatenated, as Ray would run them (here, in order, in this process)."""
    import pyarrow as pa

    tasks = source.get_read_tasks(parallelism)
    blocks = [b for task in tasks for b in task()]
    assert sum(t.metadata.num_rows for t in tasks) == sum(b.num_rows for b in blocks)
    return pa.concat_tables(blocks).to_pylist() if blocks else []


def test_read_tasks_take_ranges_of_whole_blocks(plate: tuple[Path, np.ndarray]) -> None:
    path, arrs = plate
    source = _source(path, images_per_block=3)
    tasks = source.get_read_tasks(100)
    assert [t.metadata.num_rows for t in tasks] == [3, 3, 3, 2]  # no fewer than a block's images per task
    assert [t.metadata.num_rows for t in source.get_read_tasks(2)] == [6, 5]
    assert source.estimate_inmemory_data_size() == N * 2 * 18 * 20 * 2
    rows = _run(source)
    assert [r["label"] for r in rows] == list(range(N))
    for r in rows:
        np.testing.assert_array_equal(r["image"], arrs[r["label"]])


def test_default_blocks_hold_whole_batches(plate: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    path, arrs = plate
    per_image = 2 * 18 * 20 * 2
    monkeypatch.setattr(datasource, "BLOCK_BYTES", 5 * per_image)  # 5 images' bytes a block
    monkeypatch.setattr(datasource, "cluster_cpus", lambda: 1)  # (one block per CPU: tested in test_ray_worker_reuse)
    assert [t.metadata.num_rows for t in _source(path, batch_size=2).get_read_tasks(100)] == [4, 4, 3]
    assert [t.metadata.num_rows for t in _source(path, batch_size=3).get_read_tasks(100)] == [3, 3, 3, 2]
    assert [t.metadata.num_rows for t in _source(path, batch_size=8).get_read_tasks(100)] == [5, 5, 1]  # < 1 batch
    assert [t.metadata.num_rows for t in _source(path, batch_size=2).get_read_tasks(2)] == [6, 5]  # Ray asks fewer
    rows = _run(_source(path, batch_size=2))
    assert [r["label"] for r in rows] == list(range(N))
    np.testing.assert_array_equal(np.stack([r["image"] for r in rows]), arrs)
    # full blocks first, the short one last (not evened out: 2000 images in 16 tasks were 125 each,
    # so that every fourth batch of 32 straddled two blocks)
    cut = datasource.block_ranges(np.arange(2000), 128, 16)
    assert [len(p) for p in cut] == [128] * 15 + [80] and np.array_equal(np.concatenate(cut), np.arange(2000))
    assert [len(p) for p in datasource.block_ranges(np.arange(2000), 128, 4)] == [500] * 4


def test_filters_and_column_selections_are_pushed_into_the_read(plate: tuple[Path, np.ndarray]) -> None:
    path, _arrs = plate
    source = _source(path, images_per_block=2)
    kept = source.apply_predicate(col("well") == "C1")
    assert kept is not source and sum(t.metadata.num_rows for t in kept.get_read_tasks(8)) == 4  # never reads the rest
    assert [r["label"] for r in _run(kept)] == [1, 4, 7, 10]
    both = kept.apply_predicate(col("label") > 4)
    assert [r["label"] for r in _run(both)] == [7, 10]
    assert source.apply_predicate(col("image") == 3) is source  # not a metadata column: Ray filters it
    labels_only = source.apply_projection({"label": "label"})
    assert labels_only.estimate_inmemory_data_size() == 0
    assert _run(labels_only)[:2] == [{"label": 0}, {"label": 1}]  # no pixels read
    pixels_only = source.apply_projection({"image": "image"})
    assert set(_run(pixels_only)[0]) == {"image"}


def test_seeded_shuffles_and_epochs(plate: tuple[Path, np.ndarray]) -> None:
    path, _arrs = plate
    orders = [
        [r["label"] for r in _run(_source(path, shuffle=True, seed=4, epoch=e, images_per_block=4))] for e in (0, 1, 0)
    ]
    assert orders[0] == orders[2] != orders[1]  # the same epoch gives the same order; a new one another
    assert orders[0] == epoch_order(N, shuffle=True, seed=4, epoch=0).tolist()
    assert sorted(orders[1]) == list(range(N))


def test_random_crops_match_the_torch_loaders(plate: tuple[Path, np.ndarray]) -> None:
    torch_data = pytest.importorskip("ome_arrow_torch")
    path, arrs = plate
    theirs = torch_data.OMEArrowTorchDataset(path, crop=(7, 9), random_crop=True, seed=3, target="label")
    for epoch in (0, 2):
        theirs.set_epoch(epoch)
        rows = _run(_source(path, crop=(7, 9), random_crop=True, seed=3, epoch=epoch))
        for r in rows:
            assert r["image"].shape == (2, 7, 9)
            np.testing.assert_array_equal(r["image"], theirs[r["label"]][0].numpy())  # the same window
    centre = _run(_source(path, crop=(8, 10)))[5]["image"]
    np.testing.assert_array_equal(centre, arrs[5][:, 5:13, 5:15])


def test_errors(plate: tuple[Path, np.ndarray]) -> None:
    path, _ = plate
    with pytest.raises(SelectionError, match="larger than image 0"):
        _source(path, crop=(40, 4))
    with pytest.raises(SelectionError, match="two positive ints"):
        _source(path, crop=(4.5, 4))
    with pytest.raises(SelectionError, match="only one of roi and crop"):
        read_dataset(path, crop=(4, 4), roi=(0, 0, 4, 4))
    with pytest.raises(ArgumentTypeError, match="prefetch_batches"):  # a loader option, not a read option
        read_dataset(path, prefetch_batches=2)
    with pytest.raises(ArgumentError, match="not in the dataset"):
        read_dataset(path, columns=["nope"])
    with pytest.raises(ArgumentError, match="no images match"):
        read_dataset(OMEArrowDataset.scan(path), filter={"well": "Z"})
    with pytest.raises(ArgumentError, match="collides"):
        read_dataset(path, image_column="well")
    with pytest.raises(ArgumentError, match=r"random_crop=True needs crop=\(h, w\)"):  # whole images, silently
        _source(path, random_crop=True)
    for bad in ({"seed": -1}, {"seed": 1.5}, {"epoch": 2.7}):  # -1 failed in the read tasks, floats were truncated
        with pytest.raises(ArgumentError, match="must be an int >= 0"):
            _source(path, **bad)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"images_per_block": 0}, "images_per_block must be an int >= 1"),
        ({"images_per_block": "2"}, "images_per_block must be an int >= 1"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an int >= 1"),
        ({"columns": "well"}, r"pass \['well'\]"),  # was "columns ['w', 'e', 'l', 'l'] are not in the dataset"
    ],
)
def test_bad_block_sizes_and_a_str_of_columns_are_refused(
    plate: tuple[Path, np.ndarray], options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ArgumentError, match=match):
        read_dataset(plate[0], **options)


def test_torch_batches_of_a_string_column_without_a_collate_fn_are_refused(plate: tuple[Path, np.ndarray]) -> None:
    # was torch's "can't convert np.ndarray of type numpy.str_" from Ray's collate, at the first batch
    from ome_arrow_ray import iter_torch_batches

    with pytest.raises(ArgumentError, match=r"columns \['well'\] do not hold numbers"):
        iter_torch_batches(plate[0], columns=["label", "well"])
