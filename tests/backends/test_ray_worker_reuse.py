"""Read tasks run one after another in one process, as a Ray worker runs them (no Ray cluster).

A Ray worker process runs many read tasks and keeps what it opened (the per-process cache of
opened datasets, page headers, audited rows, kept pixel buffers) from task to task. These
tests run the tasks, pickled and unpickled as Ray ships them, in this process: a file
replaced or rewritten between two reads must not serve the old pixels, damage found after a
warm read must raise our errors, and every image delivered must equal the one written.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ray import cloudpickle
from ray.data.expressions import col

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_ray import OMEArrowDatasource, datasource
from tests.pixels import random_pixels

N = 10
VIEW = {"t": None, "z": None, "c": None, "roi": None, "layout": None, "channel_policy": "error"}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


def _write(out: Path, arrs: np.ndarray, compression: str | None = "zstd") -> Path:
    meta = {"label": list(range(len(arrs))), "well": [f"D{i % 3}" for i in range(len(arrs))]}
    return write_dataset(list(arrs), out, dim_order="CYX", metadata=meta, compression=compression, progress=False)


def _source(path: Path, **kw: Any) -> OMEArrowDatasource:
    kw.setdefault("view", VIEW)
    return OMEArrowDatasource(OMEArrowDataset.scan(path), columns=["label", "well"], image_column="image", **kw)


def _as_worker(source: Any, parallelism: int = 100) -> list[dict[str, Any]]:
    """Every read task shipped as Ray ships it (pickled) and run in this process, one after another."""
    import pyarrow as pa

    blocks = []
    for task in source.get_read_tasks(parallelism):
        blocks += list(cloudpickle.loads(cloudpickle.dumps(task))())
    return pa.concat_tables(blocks).to_pylist() if blocks else []


def _images(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.stack([r["image"] for r in sorted(rows, key=lambda r: r["label"])])


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    arrs = random_pixels((N, 2, 14, 18), seed=11)
    return _write(tmp_path_factory.mktemp("reuse") / "plate", arrs), arrs


def test_a_plate_replaced_by_rename_is_read_anew(tmp_path: Path) -> None:
    old, new = random_pixels((N, 2, 14, 18), seed=1), random_pixels((N, 2, 14, 18), seed=2)
    path = _write(tmp_path / "plate", old)
    np.testing.assert_array_equal(_images(_as_worker(_source(path, images_per_block=3))), old)  # warm
    staged = _write(tmp_path / "staged", new)
    shutil.rmtree(path)
    os.replace(staged, path)
    np.testing.assert_array_equal(_images(_as_worker(_source(path, images_per_block=3))), new)


@pytest.mark.parametrize("shape", [(2, 14, 18), (3, 20, 24)], ids=["same shapes", "larger images"])
def test_tasks_planned_before_an_overwrite_raise(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    """Tasks planned from the old copy (their metadata rows, their image shape) and run after an overwrite swapped
    in a new one: their rows would pair the old labels with the new pixels (or a crop of larger ones)."""
    import errno

    from ome_arrow_core.errors import StorageError

    path = _write(tmp_path / "plate", random_pixels((N, 2, 14, 18), seed=6))
    tasks = _source(path, images_per_block=3).get_read_tasks(100)
    staged = _write(tmp_path / "staged", random_pixels((N, *shape), seed=7))
    shutil.rmtree(path)
    os.replace(staged, path)
    with pytest.raises(StorageError, match="was overwritten after this Ray dataset was made") as err:
        for task in tasks:
            list(cloudpickle.loads(cloudpickle.dumps(task))())
    assert err.value.errno == errno.ESTALE


def test_a_plate_rewritten_in_place_is_read_anew(tmp_path: Path) -> None:
    # Same shapes, same sizes of every file (uncompressed), copied over the old files' inodes:
    # only the files' times and contents tell the two plates apart.
    old, new = random_pixels((N, 2, 14, 18), seed=3), random_pixels((N, 2, 14, 18), seed=4)
    path = _write(tmp_path / "plate", old, compression=None)
    other = _write(tmp_path / "other", new, compression=None)
    np.testing.assert_array_equal(_images(_as_worker(_source(path))), old)  # warm: opened, audited, buffers kept
    inodes = {f.name: f.stat().st_ino for f in path.iterdir()}
    for f in other.iterdir():
        with open(path / f.name, "r+b") as dst:  # rewritten through the same inode
            dst.write(f.read_bytes())
            dst.truncate()
    assert {f.name: f.stat().st_ino for f in path.iterdir()} == inodes
    np.testing.assert_array_equal(_images(_as_worker(_source(path))), new)


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_damage_after_a_warm_read_raises_our_errors(tmp_path: Path, how: str) -> None:
    arrs = random_pixels((N, 2, 14, 18), seed=5)
    path = _write(tmp_path / "plate", arrs, compression=None)
    source = _source(path, images_per_block=4)
    np.testing.assert_array_equal(_images(_as_worker(source)), arrs)  # this process opened and audited it all
    chunks = path / "chunks.parquet"
    raw = bytearray(chunks.read_bytes())
    if how == "flip":
        at = raw.find(arrs[6, 1, 7].tobytes())
        assert at >= 0
        raw[at + 2] ^= 0x04
    else:
        del raw[len(raw) // 2 :]
    with open(chunks, "r+b") as f:  # in place: the same inode
        f.write(bytes(raw))
        f.truncate()
    error = ChecksumError if how == "flip" else DamagedFileError
    with pytest.raises(error, match=r"chunks\.parquet"):
        _as_worker(source)  # the tasks planned before the damage
    with pytest.raises(error, match=r"chunks\.parquet"):
        _as_worker(_source(path, images_per_block=4))  # and tasks planned after it


def test_default_blocks_leave_a_block_for_each_cpu(
    plate: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, arrs = plate
    monkeypatch.setattr(datasource, "cluster_cpus", lambda: 4)
    assert [t.metadata.num_rows for t in _source(path, batch_size=1).get_read_tasks(100)] == [3, 3, 3, 1]
    assert [t.metadata.num_rows for t in _source(path, batch_size=2).get_read_tasks(100)] == [2] * 5
    assert _source(path, batch_size=2).planned_blocks() == 5
    monkeypatch.setattr(datasource, "cluster_cpus", lambda: 1)
    assert [t.metadata.num_rows for t in _source(path, batch_size=4).get_read_tasks(100)] == [8, 2]
    np.testing.assert_array_equal(_images(_as_worker(_source(path, batch_size=4))), arrs)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    per=st.one_of(st.none(), st.integers(1, N + 2)),
    batch=st.integers(1, 6),
    shuffle=st.booleans(),
    seed=st.integers(0, 3),
    epoch=st.integers(0, 2),
    well=st.sampled_from([None, "D0", "D2"]),
    channel=st.sampled_from([None, 0, 1]),
    crop=st.sampled_from([None, (5, 7), (14, 18)]),
    parallelism=st.sampled_from([1, 3, 100]),
)
def test_every_image_delivered_equals_the_source(
    plate: tuple[Path, np.ndarray],
    per: int | None,
    batch: int,
    shuffle: bool,
    seed: int,
    epoch: int,
    well: str | None,
    channel: int | None,
    crop: tuple[int, int] | None,
    parallelism: int,
) -> None:
    path, arrs = plate
    source: Any = _source(
        path,
        view={**VIEW, "c": channel},
        images_per_block=per,
        batch_size=batch,
        shuffle=shuffle,
        seed=seed,
        epoch=epoch,
        crop=crop,
    )
    if well is not None:
        source = source.apply_predicate(col("well") == well)
    rows = _as_worker(source, parallelism)
    want = [k for k in range(N) if well is None or f"D{k % 3}" == well]
    assert sorted(r["label"] for r in rows) == want
    for r in rows:
        k = r["label"]
        assert r["well"] == f"D{k % 3}"
        image = arrs[k] if channel is None else arrs[k][channel : channel + 1]
        if crop is not None:
            y, x = (14 - crop[0]) // 2, (18 - crop[1]) // 2
            image = image[:, y : y + crop[0], x : x + crop[1]]
        np.testing.assert_array_equal(r["image"], image)
