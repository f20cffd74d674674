"""Image records (typed_chunk/image_records.py): a fixed-width record per image, read a checked 4 KiB page at a time.

A random ``ds[i]`` of a plate with records reads its metadata and pixel locator from its record, not from its images
row group; every page is checked against page sums chained to the manifest, so damage and lies are refused, and a
records file that is missing, of another size, or made from another version of its table is not used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import xxhash
from damage import flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import image_records
from ome_arrow_core.typed_chunk.image_records import PAGE, RECORD, RECORDS_KEY, WIDTH
from ome_arrow_core.typed_chunk.image_rows import meta_from_row
from ome_arrow_core.typed_chunk.opening import clear_cache, open_dataset
from ome_arrow_core.typed_chunk.spec import LOCATOR_COLUMNS, MANIFEST


def _image(i: int, shape: tuple[int, ...] = (1, 6, 5)) -> np.ndarray:
    return ((np.arange(int(np.prod(shape))) + 7 * i) % 4096).astype(np.uint16).reshape(shape)


def _plate(tmp: Path, n: int = 300, name: str = "plate", **options: Any) -> Path:
    out = write_dataset(
        (_image(i) for i in range(n)),
        tmp / name,
        dim_order="CYX",
        progress=False,
        **{"images_per_group": 32, **options},
    )
    clear_cache()
    return Path(out)


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / MANIFEST).read_text())  # type: ignore[no-any-return]


def _entry(out: Path, table: str = "images.parquet") -> dict[str, Any]:
    return _manifest(out)["ome_arrow_core"][RECORDS_KEY][table]  # type: ignore[no-any-return]


def _check_all(out: Path, n: int, verify: bool = True) -> None:
    ds = OMEArrowDataset.scan(out, verify=verify)
    rows = pq.read_table(out / "images.parquet").to_pylist() if (out / "images.parquet").is_file() else []
    for i in range(n):
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
        if i < len(rows):
            assert ds[i].meta == meta_from_row(rows[i])


# -- what is written, and that reads use it ---------------------------------------------------------------
def test_records_are_written_and_a_random_get_decodes_no_images_row_group(tmp_path: Path) -> None:
    out = _plate(tmp_path, 300)
    entry = _entry(out)
    assert entry["count"] == 300 and entry["file"] == "images.records"
    assert (out / "images.records").stat().st_size == entry["size"]
    ds = OMEArrowDataset.scan(out)
    rng = np.random.default_rng(0)
    for i in rng.permutation(300)[:40].tolist():
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i))
    np.testing.assert_array_equal(ds.read([5, 250, 17]), np.stack([_image(5), _image(250), _image(17)]))
    rows = open_dataset(out).images
    assert not rows._decoded and not rows._groups  # no images row group was decoded (10 of them)
    assert rows.records is not None and len(rows.records.readers[0]._pages) <= 16  # pages kept: bounded


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 260),
    per_group=st.sampled_from([7, 64, 1024]),
    ids=st.sampled_from(["default", "unicode", "long"]),
    mixed=st.booleans(),
    batch=st.sampled_from([5, 64, image_records.BATCH_ROWS]),
)
def test_records_serve_what_pyarrow_reads_from_the_table(
    tmp_path: Path, n: int, per_group: int, ids: str, mixed: bool, batch: int
) -> None:
    """Random plates (ids of any length, in any script; images of two shapes: two variants; records made from
    batches of any size): every image's metadata and locator from its record equal those of pyarrow's own read of
    its images row."""
    shapes = [(1, 3, 4) if mixed and i % 3 == 1 else (1, 6, 5) for i in range(n)]
    names = {
        "default": None,
        "unicode": [f"puits-é{i}-ß" * (1 + i % 3) for i in range(n)],
        "long": [f"{i}-" + "n" * (i * 37 % 900) for i in range(n)],
    }[ids]
    out = tmp_path / f"p{n}-{per_group}-{ids}-{mixed}-{batch}"
    shutil.rmtree(out, ignore_errors=True)
    default, image_records.BATCH_ROWS = image_records.BATCH_ROWS, batch
    try:
        write_dataset(
            (_image(i, shapes[i]) for i in range(n)),
            out,
            dim_order="CYX",
            progress=False,
            images_per_group=per_group,
            image_ids=names,
        )
    finally:
        image_records.BATCH_ROWS = default
    clear_cache()
    rows = pq.read_table(out / "images.parquet").to_pylist()
    assert len(_entry(out)["variants"]) == (2 if mixed and n > 1 else 1)
    ds = OMEArrowDataset.scan(out)
    opened = open_dataset(out)
    for i in np.random.default_rng(n).permutation(n)[:25].tolist():
        assert ds[i].meta == meta_from_row(rows[i])
        assert opened.images.scalars(i, LOCATOR_COLUMNS) == [rows[i][c] for c in LOCATOR_COLUMNS]
        np.testing.assert_array_equal(ds[i].to_numpy(layout="CYX"), _image(i, shapes[i]))
    assert not opened.images._decoded


def test_appends_get_their_own_records_and_compaction_keeps_reads_right(tmp_path: Path) -> None:
    out = _plate(tmp_path, 40)
    before = (out / "images.records").read_bytes()
    write_dataset((_image(i) for i in range(40, 70)), out, mode="append", dim_order="CYX", progress=False)
    clear_cache()
    listed = _manifest(out)["ome_arrow_core"][RECORDS_KEY]
    assert set(listed) == {"images.parquet", "images-00001.parquet"}
    assert (out / "images.records").read_bytes() == before  # the base table's, kept
    assert listed["images-00001.parquet"]["count"] == 30
    _check_all(out, 70)
    from ome_arrow_core import cleanup_dataset

    cleanup_dataset(out)
    assert (out / "images-00001.records").is_file()  # listed: not an unlisted append's file
    compact_dataset(out)
    clear_cache()
    listed = _manifest(out)["ome_arrow_core"][RECORDS_KEY]  # the merged table's, made anew
    assert set(listed) == {"images.parquet"} and listed["images.parquet"]["count"] == 70
    assert sorted(p.name for p in out.glob("*.records")) == ["images.records"]  # the parts' are gone
    _check_all(out, 70)
    opened = open_dataset(out)
    assert opened.images.records is not None and opened.images.records.readers[0] is not None
    assert not opened.images._decoded and not opened.images._groups  # ds[i] read records, no images row group
    from ome_arrow_core import cleanup_dataset, verify

    assert verify(out).ok
    assert cleanup_dataset(out).removed == [] and cleanup_dataset(out).kept == []


def test_a_dataset_without_records_still_reads(tmp_path: Path) -> None:
    out = _plate(tmp_path, 70)
    manifest = _manifest(out)
    manifest["ome_arrow_core"].pop(RECORDS_KEY)
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "images.records").unlink()
    clear_cache()
    _check_all(out, 70)


def test_ome_arrow_reference_reader_still_reads_it(tmp_path: Path) -> None:
    pytest.importorskip("ome_arrow", reason="needs the reference package: pip install ome-arrow==0.1.0")
    from ome_arrow.dataset import OMEArrowDataset as RefDataset

    out = _plate(tmp_path, 6)
    assert (out / "images.records").is_file()
    ref = RefDataset(out)
    for i in range(6):
        np.testing.assert_array_equal(np.asarray(ref.read_image(f"image-{i:05d}")).reshape(1, 6, 5), _image(i))


# -- damage and lies ------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["record", "heap", "sums"])
def test_a_flipped_byte_anywhere_in_the_records_is_refused(tmp_path: Path, where: str) -> None:
    out = _plate(tmp_path, 300)
    entry = _entry(out)
    pages = entry["record_pages"] + -(-entry["heap_bytes"] // PAGE)
    at = {"record": 3 * WIDTH + 9, "heap": entry["record_pages"] * PAGE + 2, "sums": pages * PAGE + 1}[where]
    flip_byte(out / "images.records", at)
    ds = OMEArrowDataset.scan(out)
    with pytest.raises(ChecksumError):
        ds[3].to_numpy()
    from ome_arrow_core import verify

    assert not verify(out).ok


def test_a_lying_but_self_consistent_records_file_is_refused(tmp_path: Path) -> None:
    """A record pointing at its neighbour's pixels, the file's page sums made to match: the manifest's digest of
    the sums refuses it."""
    out = _plate(tmp_path, 300)
    entry = _entry(out)
    data = bytearray((out / "images.records").read_bytes())
    recs = np.frombuffer(data, RECORD, 300)
    lie = recs[3].copy()
    lie["offset"], lie["checksum"] = recs[4]["offset"], recs[4]["checksum"]
    data[3 * WIDTH : 4 * WIDTH] = lie.tobytes()
    pages = entry["record_pages"] + -(-entry["heap_bytes"] // PAGE)
    sums = np.array([xxhash.xxh3_64_intdigest(bytes(data[p * PAGE : (p + 1) * PAGE])) for p in range(pages)], "<u8")
    data[pages * PAGE :] = sums.tobytes()
    (out / "images.records").write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        OMEArrowDataset.scan(out)[3].to_numpy()
    np.testing.assert_array_equal(  # with checks off the lie is what the file says (as a table's would be)
        OMEArrowDataset.scan(out, verify=False)[3].to_numpy(layout="CYX"), _image(4)
    )


def test_an_impossible_record_is_refused_even_with_checks_off(tmp_path: Path) -> None:
    out = _plate(tmp_path, 40)
    data = bytearray((out / "images.records").read_bytes())
    at = 2 * WIDTH + RECORD.fields["variant"][1]
    data[at : at + 4] = (999).to_bytes(4, "little")  # variant 999 of 1
    (out / "images.records").write_bytes(bytes(data))
    with pytest.raises(DamagedFileError):
        OMEArrowDataset.scan(out, verify=False)[2].to_numpy()


@pytest.mark.parametrize("how", ["truncated", "missing"])
def test_a_truncated_or_missing_records_file_is_not_used(tmp_path: Path, how: str) -> None:
    out = _plate(tmp_path, 70)
    if how == "missing":
        (out / "images.records").unlink()
    else:
        with open(out / "images.records", "r+b") as f:
            f.truncate(PAGE + 5)
    _check_all(out, 70)  # the images table serves, checked by its row groups
    assert open_dataset(out).images._decoded
    from ome_arrow_core import verify

    assert not verify(out).ok


def test_records_of_another_version_of_the_table_are_not_used(tmp_path: Path) -> None:
    """A tool rewrote images.parquet (another name for image 5) and recorded its digests, leaving the records:
    they were made from another table, and the table's own rows are served."""
    from table_digests import without_table_digests

    out = _plate(tmp_path, 40)
    table = pq.read_table(out / "images.parquet")
    names = table.column("name").to_pylist()
    names[5] = "renamed"
    import pyarrow as pa

    table = table.set_column(table.schema.get_field_index("name"), "name", pa.array(names, pa.string()))
    pq.write_table(table, out / "images.parquet", row_group_size=32)
    manifest = _manifest(out)
    manifest["ome_arrow_core"].pop("table_groups", None)  # its row-group records, listed or packed
    manifest["ome_arrow_core"].pop("table_groups_packed", None)
    (out / MANIFEST).write_text(json.dumps(manifest))
    without_table_digests(out)
    clear_cache()
    assert OMEArrowDataset.scan(out)[5].meta.name == "renamed"


def test_a_malformed_records_entry_is_a_damaged_manifest(tmp_path: Path) -> None:
    out = _plate(tmp_path, 10)
    manifest = _manifest(out)
    manifest["ome_arrow_core"][RECORDS_KEY]["images.parquet"]["count"] = "many"
    (out / MANIFEST).write_text(json.dumps(manifest))
    clear_cache()
    with pytest.raises(DamagedFileError):
        OMEArrowDataset.scan(out)[0].to_numpy()


def test_records_of_another_layout_are_not_used(tmp_path: Path) -> None:
    """A later version's records (another record width): this one reads the table, as without records."""
    out = _plate(tmp_path, 40)
    manifest = _manifest(out)
    manifest["ome_arrow_core"][RECORDS_KEY]["images.parquet"]["width"] = 48
    (out / MANIFEST).write_text(json.dumps(manifest))
    clear_cache()
    _check_all(out, 40)
    assert open_dataset(out).images._decoded


def test_a_damaged_images_table_does_not_change_what_records_serve_and_is_still_found(tmp_path: Path) -> None:
    """Records serve an image without its images row group: damage there is refused by what reads the table (its
    rows, a filter, ``verify``), and never changes what a record serves."""
    out = _plate(tmp_path, 40)
    table = pq.read_table(out / "images.parquet")
    data = (out / "images.parquet").read_bytes()
    at = data.find(int(table.column("pixels_offset")[0].as_py()).to_bytes(8, "little"))
    assert at > 0
    flip_byte(out / "images.parquet", at + 1)
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds[0].to_numpy(layout="CYX"), _image(0))
    with pytest.raises(ChecksumError):
        ds.table  # noqa: B018
    from ome_arrow_core import verify

    assert not verify(out).ok


def test_a_batch_of_a_plate_with_records_parses_no_images_footer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's shared plan (one size and dtype) is decided by the records' variants, not the footer statistics."""
    from ome_arrow_core.dataset import scan

    out = _plate(tmp_path, 100)

    def refused(*args: object) -> None:
        raise AssertionError("the images footer was parsed")

    monkeypatch.setattr(scan, "table_footer", refused)
    ds = OMEArrowDataset.scan(out)
    np.testing.assert_array_equal(ds.read([3, 99, 40]), np.stack([_image(3), _image(99), _image(40)]))
    assert scan.uniform_member(ds._parts[0])


def test_a_compaction_that_keeps_images_parquet_keeps_its_records(tmp_path: Path) -> None:
    """One part: compaction rewrites chunks.parquet and keeps images.parquet (and its records, whose locators then
    name a file the manifest no longer lists as located: the index serves the pixels)."""
    out = _plate(tmp_path, 50)
    before = (out / "images.records").read_bytes()
    compact_dataset(out)
    clear_cache()
    assert set(_manifest(out)["ome_arrow_core"][RECORDS_KEY]) == {"images.parquet"}
    assert (out / "images.records").read_bytes() == before
    _check_all(out, 50)
    ds = OMEArrowDataset.scan(out)
    assert ds[7].meta.id == "image-00007"
    from ome_arrow_core import verify

    assert verify(out).ok


def test_a_lying_records_digest_written_after_a_read_is_refused(tmp_path: Path) -> None:
    """The manifest replaced after a read (a new file) with another digest of the page sums: a fresh open sees it."""
    out = _plate(tmp_path, 40)
    np.testing.assert_array_equal(OMEArrowDataset.scan(out)[0].to_numpy(layout="CYX"), _image(0))
    manifest = _manifest(out)
    manifest["ome_arrow_core"][RECORDS_KEY]["images.parquet"]["sums"] = "0123456789abcdef"
    (out / (MANIFEST + ".tmp")).write_text(json.dumps(manifest))
    (out / (MANIFEST + ".tmp")).replace(out / MANIFEST)
    with pytest.raises(ChecksumError, match="page sums"):
        OMEArrowDataset.scan(out)[1].to_numpy()


# -- a batch holds the records file open ------------------------------------------------------------------
def _fds() -> set[str]:
    """What this process's file descriptors name (the one listing them excepted)."""
    import os

    out = set()
    for n in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{n}"))
        except FileNotFoundError:  # the listing's own
            continue
    return out


def test_a_batch_opens_the_records_file_once_and_closes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ds.read`` of 40 random images of a plate too large to keep its records' pages opens its records file once
    (not once an image), and no descriptor of it is left open after the batch, nor after a batch that failed."""
    from ome_arrow_core.typed_chunk import record_reads

    out = _plate(tmp_path, 3000)
    opened: list[str] = []
    real = record_reads.open_regular

    def counted(parent: Path, name: str) -> int:
        opened.append(name)
        return real(parent, name)

    monkeypatch.setattr(record_reads, "open_regular", counted)
    ds = OMEArrowDataset.scan(out)
    first, picked = np.random.default_rng(5).choice(3000, (2, 40), replace=False)
    before = _fds()
    np.testing.assert_array_equal(ds.read(first), np.stack([_image(int(i)) for i in first]))  # (plans the batches)
    opened.clear()
    np.testing.assert_array_equal(ds.read(picked), np.stack([_image(int(i)) for i in picked]))
    assert opened == ["images.records"]
    assert _fds() == before
    opened.clear()
    one = next(i for i in range(3000) if i not in first and i not in picked)
    np.testing.assert_array_equal(ds[one].to_numpy(layout="CYX"), _image(one))  # one image: opened for itself
    assert opened == ["images.records"] and _fds() == before
    entry = _entry(out)
    flip_byte(out / "images.records", entry["record_pages"] * PAGE - 7)  # the last record page
    last = list(range(3000 - 30, 3000))
    with pytest.raises(ChecksumError):
        ds.read(last)
    assert _fds() == before


def test_threads_reading_batches_at_once_each_get_their_images(tmp_path: Path) -> None:
    """Batches read by four threads at once (a DataLoader's threads): the held file is shared and closed after the
    last of them; every batch has its images."""
    from concurrent.futures import ThreadPoolExecutor

    out = _plate(tmp_path, 3000)
    ds = OMEArrowDataset.scan(out)
    rng = np.random.default_rng(9)
    batches = [rng.choice(3000, 32, replace=False) for _ in range(40)]
    before = _fds()
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(ds.read, batches))
    for batch, arr in zip(batches, got):
        np.testing.assert_array_equal(arr, np.stack([_image(int(i)) for i in batch]))
    assert _fds() == before
