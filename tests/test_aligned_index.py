"""The aligned index (typed_chunk/aligned_index.py): index row group g holds the chunk rows of images row group g.

Round trips over image counts, group sizes and chunkings; older (unaligned) datasets still read; lies in the
layout (swapped or shifted row groups, wrong group counts, a truncated table, foreign chunk files, repeated
chunk ids) are refused; opening image k reads one row group of each table, however many images there are.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parquet_spies import PARQUET_FILES, spy_on
from table_digests import with_unaligned_index, without_table_digests

from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
from ome_arrow_core.errors import DamagedFileError, OMEArrowError
from ome_arrow_core.typed_chunk.aligned_index import ALIGNED, INDEX_GROUPS_KEY
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.spec import FILE_METADATA

#: Datasets written without pixel locators (as before them): reads here go through the index (see conftest).
pytestmark = pytest.mark.usefixtures("written_without_locators")


def image(i: int, shape: tuple[int, ...] = (1, 6, 5)) -> np.ndarray:
    """Image ``i`` (ZYX uint16), different for every i."""
    size = int(np.prod(shape))
    return ((np.arange(size, dtype=np.int64) * 3 + 11 * i) % 65521).astype(np.uint16).reshape(shape)


def plate(path: Path, n: int, **options: object) -> Path:
    return write_dataset(
        (image(i) for i in range(n)), path, dim_order="ZYX", metadata={"k": list(range(n))}, progress=False, **options
    )


def fresh(path: Path) -> OMEArrowDataset:
    clear_cache()
    return OMEArrowDataset.scan(path)


def index_marked(path: Path) -> bool:
    md = pq.read_metadata(path / "index.parquet")
    return (md.metadata or {}).get(INDEX_GROUPS_KEY) == ALIGNED


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 23),
    per_group=st.integers(1, 6),
    rows_per_group=st.integers(1, 3),
    chunk=st.sampled_from([None, (1, 3, 5), (1, 2, 2)]),
    picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=5),
)
def test_round_trip_over_counts_and_group_sizes(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    per_group: int,
    rows_per_group: int,
    chunk: tuple[int, int, int] | None,
    picks: list[int],
) -> None:
    path = plate(
        tmp_path_factory.mktemp("p") / "p.ome.parquet",
        n,
        images_per_group=per_group,
        rows_per_group=rows_per_group,
        chunk_shape=chunk,
    )
    assert index_marked(path)
    images_groups = pq.read_metadata(path / "images.parquet").num_row_groups
    index = pq.ParquetFile(path / "index.parquet")
    assert index.num_row_groups == images_groups == -(-n // per_group)
    for g in range(images_groups):  # group g holds exactly the chunks of images g*per_group ...
        ids = set(index.read_row_group(g, columns=["image_id"]).column(0).to_pylist())
        assert ids == {f"image-{i:05d}" for i in range(g * per_group, min(n, (g + 1) * per_group))}
    ds = fresh(path)
    assert (open_dataset(path).aligned is not None) == (n > 1) and len(ds) == n  # a single image: read whole
    for p in picks:
        i = p % n
        np.testing.assert_array_equal(ds[i].to_numpy().reshape(1, 6, 5), image(i))
    rows = [p % n for p in picks]
    np.testing.assert_array_equal(np.asarray(ds.read(rows)).reshape(len(rows), 1, 6, 5), [image(i) for i in rows])
    np.testing.assert_array_equal(np.asarray(fresh(path).read()).reshape(n, 1, 6, 5), [image(i) for i in range(n)])


def test_appends_are_aligned_and_read_with_the_base(tmp_path: Path) -> None:
    path = plate(tmp_path / "p.ome.parquet", 7, images_per_group=3)
    write_dataset((image(i) for i in range(7, 12)), path, dim_order="ZYX", mode="append", progress=False)
    ds = fresh(path)
    assert open_dataset(path).aligned is not None
    for i in (0, 6, 7, 11, 3):
        np.testing.assert_array_equal(ds[i].to_numpy().reshape(1, 6, 5), image(i))


@pytest.mark.parametrize("per_group", [2, 1024])  # several row groups, one
def test_an_unaligned_index_is_read_whole_as_before(tmp_path: Path, per_group: int) -> None:
    path = with_unaligned_index(plate(tmp_path / "p.ome.parquet", 9, images_per_group=per_group))
    assert not index_marked(path)
    ds = fresh(path)
    assert open_dataset(path).aligned is None
    np.testing.assert_array_equal(np.asarray(ds.read()).reshape(9, 1, 6, 5), [image(i) for i in range(9)])


def rewrite_index(path: Path, groups: list[pa.Table]) -> None:
    """Write ``groups`` as the row groups of index.parquet, marked aligned (a lie the reader must catch)."""
    schema = groups[0].schema.with_metadata({**FILE_METADATA, INDEX_GROUPS_KEY: ALIGNED})
    with pq.ParquetWriter(path / "index.parquet", schema) as w:
        for t in groups:
            w.write_table(t.cast(schema), row_group_size=max(1, t.num_rows))
    without_table_digests(path)


def index_groups(path: Path) -> list[pa.Table]:
    pf = pq.ParquetFile(path / "index.parquet")
    return [pf.read_row_group(g) for g in range(pf.num_row_groups)]


def read_all(path: Path) -> None:
    ds = fresh(path)
    for i in range(len(ds)):
        ds[i].to_numpy()


@pytest.fixture
def six(tmp_path: Path) -> Path:
    """Six images, two to an images row group."""
    return plate(tmp_path / "p.ome.parquet", 6, images_per_group=2)


def test_swapped_index_groups_are_refused(six: Path) -> None:
    g = index_groups(six)
    rewrite_index(six, [g[1], g[0], g[2]])
    with pytest.raises(DamagedFileError, match="no chunks in its index row group"):
        fresh(six)[0].to_numpy()


def test_shifted_group_boundaries_are_refused(six: Path) -> None:
    whole = pa.concat_tables(index_groups(six))
    rewrite_index(six, [whole.slice(0, 1), whole.slice(1, 3), whole.slice(4)])  # image 1's chunks in group 1
    with pytest.raises(DamagedFileError, match="image-00001"):
        fresh(six)[1].to_numpy()


def test_a_marked_index_with_other_row_groups_is_read_whole(six: Path) -> None:
    """Another tool rewrote the index (keeping the key) in other row groups: read whole, with its checks."""
    g = index_groups(six)
    rewrite_index(six, [pa.concat_tables(g[:2]), g[2]])
    ds = fresh(six)
    np.testing.assert_array_equal(np.asarray(ds.read()).reshape(6, 1, 6, 5), [image(i) for i in range(6)])
    assert open_dataset(six).aligned is None


def test_an_index_of_fewer_chunks_than_images_is_refused_at_open(six: Path) -> None:
    """Each group keeps its first image's chunk only (3 chunk rows, 6 images): refused from the footers, before any
    group loads, as a whole index is, by a dataset's scan and by one image's open (image 0 alone would read)."""
    rewrite_index(six, [g.slice(0, 1) for g in index_groups(six)])
    for read in (lambda: fresh(six)[0].to_numpy(), lambda: OMEArrow.scan(six, row=0).to_numpy()):
        clear_cache()
        with pytest.raises(DamagedFileError, match="lists 6 images, but the index has 3 chunk rows"):
            read()


@pytest.mark.parametrize("aligned", [True, False])
def test_a_chunk_listed_twice_in_a_one_group_plate_is_refused(tmp_path: Path, aligned: bool) -> None:
    """A plate whose index is one row group lists a chunk twice: loaded lazily (aligned), the group's chunk ids
    refuse it as it loads; read whole (as older writers wrote it), the index's coverage check does."""
    path = plate(tmp_path / "p.ome.parquet", 3, chunk_shape=(1, 3, 5))
    if not aligned:
        with_unaligned_index(path)
    table = pq.read_table(path / "index.parquet")
    pq.write_table(pa.concat_tables([table, table.slice(1, 1)]), path / "index.parquet")  # its key kept
    without_table_digests(path)
    assert (open_dataset(path).aligned is not None) == aligned
    want = "chunk_id 1 appears more than once" if aligned else "cover"
    for read in (lambda: fresh(path).read(), lambda: [fresh(path)[i].to_numpy() for i in range(3)]):
        with pytest.raises(DamagedFileError, match=want):
            read()


def test_a_truncated_index_is_refused(six: Path) -> None:
    data = (six / "index.parquet").read_bytes()
    (six / "index.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(OMEArrowError):  # the recorded digest first
        fresh(six)[0].to_numpy()
    without_table_digests(six)
    with pytest.raises(DamagedFileError):  # then the footer
        fresh(six)[0].to_numpy()


def test_a_chunk_file_the_manifest_does_not_list_is_refused(six: Path) -> None:
    g = index_groups(six)
    bad = g[1].set_column(
        g[1].schema.get_field_index("fragment_path"), "fragment_path", pa.array(["other.parquet"] * g[1].num_rows)
    )
    rewrite_index(six, [g[0], bad, g[2]])
    ds = fresh(six)
    np.testing.assert_array_equal(ds[0].to_numpy().reshape(1, 6, 5), image(0))  # other groups still read
    with pytest.raises(DamagedFileError, match="does not list"):
        ds[2].to_numpy()


def test_repeated_chunk_ids_in_a_group_are_refused(six: Path) -> None:
    g = index_groups(six)
    ids = g[2].column("chunk_id").to_numpy().copy()
    ids[-1] = ids[0]
    rewrite_index(
        six, [g[0], g[1], g[2].set_column(g[2].schema.get_field_index("chunk_id"), "chunk_id", pa.array(ids))]
    )
    with pytest.raises(DamagedFileError, match="chunk_id"):
        fresh(six)[4].to_numpy()


def test_rows_pointing_at_another_images_chunks_are_refused(six: Path) -> None:
    """Two images of one group trade chunk rows (and everything else that names them): the reads' audit finds the
    chunk rows hold the other image's id."""
    g = index_groups(six)
    t = g[1]
    order = pa.array([1, 0] if t.num_rows == 2 else list(range(t.num_rows))[::-1])
    moved = [c for c in t.column_names if c not in ("image_id",)]
    swapped = t
    for c in moved:
        swapped = swapped.set_column(t.schema.get_field_index(c), c, t.column(c).take(order))
    rewrite_index(six, [g[0], swapped, g[2]])
    with pytest.raises(DamagedFileError):
        read_all(six)


def test_overlapping_groups_are_refused(six: Path) -> None:
    """Group 2 names the chunk rows group 1 names (with their own ids): two groups claim the same chunk rows."""
    g = index_groups(six)
    two = g[2]
    for c in (
        "row_group_id",
        "row_index_in_group",
        "chunk_id",
        "page_offset",
        "page_compressed_size",
        "page_uncompressed_size",
        "row_group_offset",
        "checksum",
    ):
        two = two.set_column(two.schema.get_field_index(c), c, g[1].column(c))
    rewrite_index(six, [g[0], g[1], two])
    ds = fresh(six)
    ds[2].to_numpy()
    with pytest.raises(DamagedFileError):
        ds[4].to_numpy()


class Reads:
    """Counts the Parquet row groups and whole tables read from each file (a real pyarrow underneath)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.groups: Counter[str] = Counter()
        self.whole: Counter[str] = Counter()
        self._names: dict[int, str] = {}

        def counted_group(read_group: Any) -> Any:
            def read_row_group(pf: Any, i: int, *a: object, **k: object) -> pa.Table:
                self.groups[self._names.get(id(pf), "?")] += 1
                return read_group(pf, i, *a, **k)

            return read_row_group

        def counted_read(read: Any) -> Any:
            def read_(pf: Any, *a: object, **k: object) -> pa.Table:
                self.whole[self._names.get(id(pf), "?")] += 1
                return read(pf, *a, **k)

            return read_

        def named_init(init: Any) -> Any:
            def __init__(pf: Any, source: object, *a: object, **k: object) -> None:
                init(pf, source, *a, **k)
                self._names[id(pf)] = Path(str(source)).name

            return __init__

        spy_on(monkeypatch, PARQUET_FILES, "__init__", named_init)
        spy_on(monkeypatch, PARQUET_FILES, "read_row_group", counted_group)
        spy_on(monkeypatch, PARQUET_FILES, "read", counted_read)


@pytest.mark.parametrize("n", [40, 400])
def test_opening_image_k_reads_one_row_group_of_each_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    path = plate(tmp_path / "p.ome.parquet", n, images_per_group=8)
    clear_cache()
    reads = Reads(monkeypatch)
    ds = OMEArrowDataset.scan(path)
    k = n - 3
    np.testing.assert_array_equal(ds[k].to_numpy().reshape(1, 6, 5), image(k))
    assert reads.groups["index.parquet"] == 1 and reads.groups["images.parquet"] == 1
    assert reads.whole["index.parquet"] == 0 and reads.whole["images.parquet"] == 0
    np.testing.assert_array_equal(ds[k - 1].to_numpy().reshape(1, 6, 5), image(k - 1))  # same groups: no more reads
    assert reads.groups["index.parquet"] == 1 and reads.groups["images.parquet"] == 1


def test_reference_reads_an_aligned_plate(tmp_path: Path) -> None:
    ref = pytest.importorskip("ome_arrow.dataset")
    path = plate(tmp_path / "p.ome.parquet", 11, images_per_group=3)
    assert index_marked(path) and pq.read_metadata(path / "index.parquet").num_row_groups == 4
    reader = ref.OMEArrowDataset(path)
    for i in (0, 5, 10):
        got = np.asarray(reader.read_image(f"image-{i:05d}"))
        assert got.tobytes() == image(i).tobytes()


def test_threads_loading_groups_while_others_read_get_every_image(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    n = 60
    path = plate(tmp_path / "p.ome.parquet", n, images_per_group=4)
    ds = fresh(path)
    order = [int(i) for i in np.random.default_rng(5).permutation(n)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: ds[i].to_numpy().reshape(1, 6, 5), order))
    for i, a in zip(order, got):
        np.testing.assert_array_equal(a, image(i))


def test_compaction_keeps_the_index_aligned(tmp_path: Path) -> None:
    from ome_arrow_core import compact_dataset

    path = plate(tmp_path / "p.ome.parquet", 7, images_per_group=3)
    write_dataset((image(i) for i in range(7, 12)), path, dim_order="ZYX", mode="append", progress=False)
    compact_dataset(path)
    assert index_marked(path) and pq.read_metadata(path / "index.parquet").num_row_groups == 4
    ds = fresh(path)
    assert open_dataset(path).aligned is not None
    np.testing.assert_array_equal(np.asarray(ds.read()).reshape(12, 1, 6, 5), [image(i) for i in range(12)])
