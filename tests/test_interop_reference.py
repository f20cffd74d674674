"""The reference package ome-arrow 0.1.0 reads what we write, with identical values.

Skipped unless ``ome-arrow==0.1.0`` is installed in the test environment (CI installs it).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow, OMEArrowDataset, compact_dataset, write_dataset

pytest.importorskip("ome_arrow", reason="needs the reference package: pip install ome-arrow==0.1.0")
from ome_arrow.dataset import OMEArrowDataset as RefDataset
from ome_arrow.export import to_numpy as ref_to_numpy
from ome_arrow.ingest import from_ome_parquet

DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool")


def same_bits(expected: np.ndarray, got: object) -> None:
    arr = np.asarray(got)
    assert arr.dtype == expected.dtype and arr.shape == expected.shape
    assert np.ascontiguousarray(arr).tobytes() == np.ascontiguousarray(expected).tobytes()


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"chunk_shape": (16, 16)},
        {"chunk_shape": (2, 8, 32), "compression": "zstd", "rows_per_group": 3},
        {"compression": None, "rows_per_group": 5},
    ],
)
def test_reference_reads_our_uint16_dataset(
    options: dict[str, object], tmp_path: Path, make_pixels: Callable[..., np.ndarray]
) -> None:
    a = make_pixels((2, 3, 4, 37, 45), "uint16", seed=3)  # TCZYX, the reference's order
    out = tmp_path / "ours.ome.parquet"
    OMEArrow(a).export("parquet", out, **options)
    ref = RefDataset(out)
    same_bits(a, ref.read_image(None))
    region = ref.read_region(y=slice(10, 30), x=slice(5, 40), t=1, c=2, z=3)
    same_bits(a[1, 2, 3, 10:30, 5:40], np.asarray(region).reshape(20, 35))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_reads_every_dtype_of_our_datasets(
    dtype: str, tmp_path: Path, make_pixels: Callable[..., np.ndarray]
) -> None:
    a = make_pixels((1, 2, 3, 9, 11), dtype, seed=4)
    out = tmp_path / f"{dtype}.ome.parquet"
    OMEArrow(a).export("parquet", out, chunk_shape=(2, 4, 4))
    same_bits(a, RefDataset(out).read_image(None))


@settings(max_examples=25, deadline=None)
@given(
    shape=st.tuples(*(st.integers(1, n) for n in (2, 3, 3, 20, 20))),
    chunk=st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12)),
)
def test_reference_reads_random_shapes_and_chunks(shape: tuple[int, ...], chunk: tuple[int, int, int]) -> None:
    a = np.random.default_rng(sum(shape)).integers(0, 65535, size=shape, dtype=np.uint16)
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.ome.parquet"
        OMEArrow(a).export("parquet", out, chunk_shape=chunk)
        same_bits(a, RefDataset(out).read_image(None))


def test_reference_reads_several_images_by_id(tmp_path: Path, make_pixels: Callable[..., np.ndarray]) -> None:
    arrays = [make_pixels((2, 13, 17), "uint16", seed=s) for s in range(3)]  # CYX
    out = write_dataset(arrays, tmp_path / "plate.ome-arrow", dim_order="CYX", chunk_shape=(8, 8), progress=False)
    ref = RefDataset(out)
    assert list(ref.image_ids) == ["image-00000", "image-00001", "image-00002"]
    for i, a in enumerate(arrays):
        same_bits(a[None, :, None], ref.read_image(f"image-{i:05d}"))


def test_appended_images_need_compaction_for_the_reference(tmp_path: Path) -> None:
    """As docs/datasets.md says: 0.1.0 reads only the base files, so appended images need a compaction."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 65535, size=(2, 9, 10), dtype=np.uint16) for _ in range(3)]
    path = write_dataset(arrays[:2], tmp_path / "a.ome-arrow", dim_order="CYX", progress=False)
    write_dataset(arrays[2:], path, dim_order="CYX", mode="append", progress=False)
    ref = RefDataset(path)
    same_bits(arrays[0][None, :, None], ref.read_image("image-00000"))
    with pytest.raises(KeyError, match="image_id not found"):  # it reads images.parquet, not images-00001.parquet
        ref.read_image("image-00002")
    compact = write_dataset(OMEArrowDataset.scan(path), tmp_path / "compact.ome-arrow", progress=False)
    for i, a in enumerate(arrays):
        same_bits(a[None, :, None], RefDataset(compact).read_image(f"image-{i:05d}"))


def _format_version(path: Path) -> int:
    return int(json.loads((path / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]["format_version"])


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_reference_reads_every_image_after_compact_dataset(
    dtype: str, tmp_path: Path, make_pixels: Callable[..., np.ndarray]
) -> None:
    arrays = [make_pixels((2, 19, 23), dtype, seed=s) for s in range(6)]  # CYX
    opts: dict[str, Any] = {"dim_order": "CYX", "chunk_shape": (8, 16), "rows_per_group": 5, "progress": False}
    path = write_dataset(arrays[:2], tmp_path / f"{dtype}.ome-arrow", **opts)
    write_dataset(arrays[2:4], path, mode="append", **opts)
    write_dataset(arrays[4:], path, mode="append", **opts)
    with pytest.raises(KeyError, match="image_id not found"):
        RefDataset(path).read_image("image-00004")
    assert _format_version(path) == 2  # so older ome-arrow-core refuses it rather than miss the appended images
    assert compact_dataset(path) == ["chunks.parquet", "chunks-00001.parquet", "chunks-00002.parquet"]
    assert _format_version(path) == 1
    ref = RefDataset(path)
    assert list(ref.image_ids) == [f"image-{i:05d}" for i in range(6)]
    for i, a in enumerate(arrays):
        same_bits(a[None, :, None], ref.read_image(f"image-{i:05d}"))
    region = ref.read_region(image_id="image-00005", y=slice(3, 17), x=slice(2, 21), t=0, c=1, z=0)
    same_bits(arrays[5][1, 3:17, 2:21], np.asarray(region).reshape(14, 19))


def test_reference_reads_our_record_file(tmp_path: Path, make_pixels: Callable[..., np.ndarray]) -> None:
    a = make_pixels((2, 3, 4, 21, 30), "uint16", seed=5)
    out = tmp_path / "ours.parquet"
    OMEArrow(a).export("parquet", out, layout="record")
    strict = from_ome_parquet(out, column_name="ome_arrow", strict_schema=True)  # our schema is the canonical one
    same_bits(a, ref_to_numpy(strict, dtype="uint16"))
    pm = strict["pixels_meta"].as_py()
    assert (pm["size_t"], pm["size_c"], pm["size_z"], pm["size_y"], pm["size_x"]) == a.shape
    assert pm["type"] == "uint16"
    # without a column name the reference finds ours itself (and says so)
    with pytest.warns(UserWarning, match="Auto-detected OME-Arrow column 'ome_arrow'"):
        found = from_ome_parquet(out, column_name=None)
    same_bits(a, ref_to_numpy(found, dtype="uint16"))


def test_round_trip_through_the_reference_writer(tmp_path: Path, make_pixels: Callable[..., np.ndarray]) -> None:
    """We read back what the reference writes from our record, and it reads back what we write from that."""
    from ome_arrow.export import to_ome_parquet

    a = make_pixels((1, 2, 3, 16, 20), "uint16", seed=6)
    ours = tmp_path / "ours.parquet"
    OMEArrow(a).export("parquet", ours, layout="record")
    theirs = tmp_path / "theirs.parquet"
    to_ome_parquet(from_ome_parquet(ours, column_name="ome_arrow", strict_schema=True), theirs, column_name="img")
    again = OMEArrow(theirs, column="img")
    np.testing.assert_array_equal(again.to_numpy(), a)


def test_reference_reads_a_plate_with_a_value_index(tmp_path: Path, make_pixels: Callable[..., np.ndarray]) -> None:
    """A plate's well column gets a value index file beside the tables (and packed row-group records in the
    manifest, image records beside the images tables): ome-arrow 0.1.0 ignores them, before and after a compaction."""
    arrays = [make_pixels((1, 6, 7), "uint16", seed=s) for s in range(8)]  # CYX
    meta = [{"well": f"A0{i % 3 + 1}"} for i in range(8)]
    opts: dict[str, Any] = {"dim_order": "CYX", "rows_per_group": 3, "progress": False}
    path = write_dataset(arrays[:5], tmp_path / "plate.ome-arrow", metadata=meta[:5], **opts)
    assert any(p.name.startswith("_ome_arrow_values.images.") for p in path.iterdir())
    for i in range(5):
        same_bits(arrays[i][None, :, None], RefDataset(path).read_image(f"image-{i:05d}"))
    write_dataset(arrays[5:], path, mode="append", metadata=meta[5:], **opts)
    compact_dataset(path)
    ours = json.loads((path / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    assert list(ours["image_records"]) == ["images.parquet"]  # the merged table's records, made by compaction
    assert sorted(p.name for p in path.glob("*.records")) == ["images.records"]
    ref = RefDataset(path)
    for i, a in enumerate(arrays):
        same_bits(a[None, :, None], ref.read_image(f"image-{i:05d}"))
    assert len(OMEArrowDataset.scan(path).filter({"well": "A02"})) == 3


def test_reference_reads_a_plate_with_its_row_group_lists_in_a_sidecar(
    tmp_path: Path, make_pixels: Callable[..., np.ndarray]
) -> None:
    """A plate of many row groups keeps its row-group lists in ``_ome_arrow_groups.<digest>.json``: ome-arrow 0.1.0
    ignores the file and the manifest's entry, before and after an append and a compaction."""
    arrays = [make_pixels((1, 6, 7), "uint16", seed=s) for s in range(44)]  # CYX
    opts: dict[str, Any] = {"dim_order": "CYX", "images_per_group": 1, "rows_per_group": 2, "progress": False}
    path = write_dataset(arrays[:40], tmp_path / "plate.ome-arrow", **opts)
    assert any(p.name.startswith("_ome_arrow_groups.") for p in path.iterdir())
    assert "group_lists" in json.loads((path / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    ref = RefDataset(path)
    for i in (0, 21, 39):
        same_bits(arrays[i][None, :, None], ref.read_image(f"image-{i:05d}"))
    write_dataset(arrays[40:], path, mode="append", **opts)
    compact_dataset(path)
    assert any(p.name.startswith("_ome_arrow_groups.") for p in path.iterdir())
    ref = RefDataset(path)
    for i in (0, 17, 40, 43):
        same_bits(arrays[i][None, :, None], ref.read_image(f"image-{i:05d}"))
    assert len(OMEArrowDataset.scan(path)) == 44
