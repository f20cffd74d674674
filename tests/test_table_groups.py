"""Row-group digests of the images and index tables (manifest ``table_groups``): a footer is checked at open, each
row group before pyarrow decodes it; damage, lies and swaps are refused before any pixel of their images is
served (what an operation hashes and reads: test_table_group_costs.py)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from group_plates import (
    PER_GROUP,
    copy_plate,
    count_group_reads,
    edit_manifest,
    image,
    manifest_of,
    read_cyx,
    recorded_groups,
    write_group_plate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from table_records import edit_groups, groups_of

from ome_arrow_core import OMEArrowDataset, compact_dataset, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk.group_records import PACKED_GROUPS_KEY, packed_entry
from ome_arrow_core.typed_chunk.group_sums import GROUPS_KEY, measure
from ome_arrow_core.typed_chunk.opening import clear_cache
from ome_arrow_core.typed_chunk.table_sums import file_digest


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_group_plate(tmp_path_factory.mktemp("groups") / "plate")


@pytest.fixture
def plate(base: Path, tmp_path: Path) -> Path:
    return copy_plate(base, tmp_path)


@pytest.fixture
def group_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[tuple[str, int]]:
    """(file name, row group) of every ParquetFile.read_row_group call (the real method still runs)."""
    return count_group_reads(monkeypatch)


def test_writes_record_each_row_group_and_the_footer(plate: Path) -> None:
    for name in ("images.parquet", "index.parquet"):
        entry = recorded_groups(plate, name)
        assert entry["digest"] == file_digest(plate / name) == manifest_of(plate)["ome_arrow_core"]["tables"][name][0]
        assert len(entry["bounds"]) == pq.read_metadata(plate / name).num_row_groups + 1 == 5 + 1
        assert entry["size"] == (plate / name).stat().st_size
        found = measure(plate / name, entry["digest"])
        assert found is not None and found.to_json() == entry
        assert GROUPS_KEY not in manifest_of(plate)["ome_arrow_core"]  # packed: no list of JSON numbers


@pytest.mark.parametrize("name", ["images.parquet", "index.parquet"])
def test_a_damaged_row_group_is_refused_before_its_images_are_served(
    plate: Path, name: str, group_reads: Counter[tuple[str, int]]
) -> None:
    bounds = recorded_groups(plate, name)["bounds"]
    data = bytearray((plate / name).read_bytes())
    data[(bounds[2] + bounds[3]) // 2] ^= 0x40  # inside row group 2: images 10..14
    (plate / name).write_bytes(bytes(data))
    ds = OMEArrowDataset.scan(plate)  # the footer is intact
    assert len(ds) == 23
    for i in (10, 14):
        with pytest.raises(ChecksumError, match=rf"\[{name}\]: .*row group 2 .*was not parsed"):
            read_cyx(ds, i)
    with pytest.raises(ChecksumError):
        ds.read([3, 12], layout="CYX")
    for i in (0, 9, 15, 22):  # other row groups are intact: their pixels are served
        np.testing.assert_array_equal(read_cyx(ds, i), image(i))
    assert (name, 2) not in group_reads  # pyarrow never decoded the damaged group


@pytest.mark.parametrize("name", ["images.parquet", "index.parquet"])
@pytest.mark.parametrize("how", ["footer", "truncate", "extend"])
def test_a_damaged_footer_or_size_is_refused_at_scan(plate: Path, name: str, how: str) -> None:
    data = bytearray((plate / name).read_bytes())
    if how == "footer":
        data[-40] ^= 0x01
    elif how == "truncate":
        del data[-100:]
    else:
        data += b"\0" * 16
    (plate / name).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=rf"\[{name}\]: the table's bytes do not match"):
        read_cyx(OMEArrowDataset.scan(plate), 0)


def test_row_groups_swapped_in_from_another_dataset_are_refused(tmp_path: Path, plate: Path) -> None:
    other = write_group_plate(
        tmp_path / "other", seed=1000
    )  # same ids, same layout, other pixels (other chunk checksums)
    name = "index.parquet"
    mine, theirs = recorded_groups(plate, name)["bounds"], recorded_groups(other, name)["bounds"]
    data, foreign = (plate / name).read_bytes(), (other / name).read_bytes()
    if mine[3] - mine[2] != theirs[3] - theirs[2]:
        pytest.skip("the two group encodings differ in length")  # pragma: no cover (deterministic writer)
    spliced = data[: mine[2]] + foreign[theirs[2] : theirs[3]] + data[mine[3] :]
    assert spliced != data and len(spliced) == len(data)
    (plate / name).write_bytes(spliced)
    ds = OMEArrowDataset.scan(plate)
    with pytest.raises(ChecksumError, match="row group 2"):
        read_cyx(ds, 11)
    np.testing.assert_array_equal(read_cyx(ds, 4), image(4))


def test_a_whole_table_from_another_dataset_is_refused(tmp_path: Path, plate: Path) -> None:
    other = write_group_plate(tmp_path / "other", seed=1000)
    shutil.copy(other / "index.parquet", plate / "index.parquet")  # a stale manifest for this table
    with pytest.raises(ChecksumError, match=r"\[index.parquet\]"):
        read_cyx(OMEArrowDataset.scan(plate), 0)


def test_a_lie_in_a_row_group_digest_is_refused(plate: Path) -> None:
    def lie(ours: dict[str, Any]) -> None:
        sums = ours[PACKED_GROUPS_KEY]["images.parquet"]["sums"]
        ours[PACKED_GROUPS_KEY]["images.parquet"]["sums"] = sums[:16] + "0123456789abcdef" + sums[32:]  # group 1

    edit_manifest(plate, lie)
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(read_cyx(ds, 0), image(0))
    with pytest.raises(ChecksumError, match=r"row group 1 .*recorded 0123456789abcdef"):
        read_cyx(ds, 7)


@pytest.mark.parametrize(
    "entry",
    [
        "not an object",
        {"digest": "x", "size": 1, "bounds": [5, 3], "sums": ""},
        {"digest": "x", "size": 1, "bounds": [0], "sums": "short"},
        {"digest": "x", "size": "many", "bounds": [0], "sums": "0" * 16},
        {"digest": "x", "size": 100, "bounds": [0, 5, 5], "sums": "0" * 48},  # a repeated bound
        {"digest": "x", "size": 100, "bounds": [1, 5], "sums": "0" * 32},  # not from 0
        {"digest": "x", "size": 4, "bounds": [0, 5], "sums": "0" * 32},  # past the table's end
        {"digest": "x", "size": 100, "bounds": [], "sums": ""},
        {"digest": "x", "size": 100, "bounds": [[0]], "sums": "0" * 16},
        {"digest": "x", "size": 100, "bounds": "05", "sums": "0" * 32},
        {"digest": "x", "size": 100, "bounds": [0, 2**70], "sums": "0" * 32},
    ],
)
@pytest.mark.parametrize("packed", [False, True])
def test_a_malformed_entry_is_a_damaged_manifest(plate: Path, entry: Any, packed: bool) -> None:
    if packed and isinstance(entry, dict) and isinstance(entry["bounds"], list) and entry["bounds"] != [[0]]:
        entry = packed_entry({**entry, "bounds": [min(b, 2**63 - 1) for b in entry["bounds"]]})
    key = PACKED_GROUPS_KEY if packed else GROUPS_KEY

    def edit(ours: dict[str, Any]) -> None:
        ours.pop(PACKED_GROUPS_KEY if not packed else GROUPS_KEY, None)
        ours.setdefault(key, {})["images.parquet"] = entry

    edit_manifest(plate, edit)
    with pytest.raises(DamagedFileError, match=rf"\[_ome_arrow_dataset.json\]: ome_arrow_core.{key}\["):
        read_cyx(OMEArrowDataset.scan(plate), 0)


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: e.update({"groups": e["groups"] + 1}),  # the lists hold fewer integers than it says
        lambda e: e.update({"groups": -1}),
        lambda e: e.update({"groups": True}),
        lambda e: e.update({"bounds": e["bounds"][:-4]}),  # truncated text
        lambda e: e.update({"bounds": "!" + e["bounds"][1:]}),  # not base64
        lambda e: e.update({"group_rows": e["footer_spans"]}),  # another list's length
        lambda e: e.update({"footer_spans": 7}),
    ],
)
def test_malformed_packed_lists_are_a_damaged_manifest(plate: Path, edit: Any) -> None:
    edit_manifest(plate, lambda ours: edit(ours[PACKED_GROUPS_KEY]["images.parquet"]))
    with pytest.raises(DamagedFileError, match=rf"ome_arrow_core.{PACKED_GROUPS_KEY}\['images.parquet'\]"):
        read_cyx(OMEArrowDataset.scan(plate), 0)


def test_packed_lists_that_lie_consistently_are_refused(plate: Path) -> None:
    """Bounds moved by one byte, repacked (well-formed, increasing): the row groups' digests no longer cover what
    they were measured on."""

    def lie(entries: dict[str, dict[str, Any]]) -> None:
        bounds = entries["images.parquet"]["bounds"]
        bounds[2] += 1

    edit_manifest(plate, lambda ours: edit_groups(ours, lie))
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(read_cyx(ds, 0), image(0))
    for i in (5, 10):  # row groups 1 and 2 lost or gained a byte
        with pytest.raises(ChecksumError, match=r"row group [12] "):
            read_cyx(ds, i)


def test_records_that_disagree_fall_back_to_the_whole_table(plate: Path) -> None:
    digest = recorded_groups(plate, "images.parquet")["digest"]
    edit_manifest(plate, lambda ours: ours["tables"].update({"images.parquet": ["0123456789abcdef"]}))
    with pytest.raises(ChecksumError, match=r"recorded 0123456789abcdef, computed " + digest):
        OMEArrowDataset.scan(plate)  # the whole table is hashed against the digest 'tables' records


def test_datasets_without_row_group_digests_check_whole_tables(plate: Path) -> None:
    edit_manifest(plate, lambda ours: ours.pop(PACKED_GROUPS_KEY))  # as written before them
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(ds.read([22, 0], layout="CYX"), np.stack([image(22), image(0)]))
    data = bytearray((plate / "images.parquet").read_bytes())
    data[len(data) // 4] ^= 0x01
    (plate / "images.parquet").write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="the table's bytes do not match"):
        OMEArrowDataset.scan(plate)  # hashed whole at open, as before


def test_appends_and_compaction_record_row_group_digests(plate: Path) -> None:
    write_dataset(
        (image(i) for i in range(23, 30)),
        plate,
        mode="append",
        dim_order="CYX",
        metadata=[{"well": "W9", "label": i} for i in range(23, 30)],
        images_per_group=PER_GROUP,
        progress=False,
    )
    recorded = groups_of(manifest_of(plate)["ome_arrow_core"])
    assert set(recorded) == {"images.parquet", "index.parquet", "images-00001.parquet", "index-00001.parquet"}
    for name, entry in recorded.items():
        assert measure(plate / name, file_digest(plate / name)).to_json() == entry  # type: ignore[union-attr]
    ds = OMEArrowDataset.scan(plate)
    np.testing.assert_array_equal(ds.read([29, 3], layout="CYX"), np.stack([image(29), image(3)]))
    compact_dataset(plate)
    assert GROUPS_KEY not in manifest_of(plate)["ome_arrow_core"]
    recorded = groups_of(manifest_of(plate)["ome_arrow_core"])
    assert set(recorded) == {"images.parquet", "index.parquet"}
    for name, entry in recorded.items():
        assert measure(plate / name, file_digest(plate / name)).to_json() == entry  # type: ignore[union-attr]
    clear_cache()
    ds = OMEArrowDataset.scan(plate)
    assert len(ds) == 30
    np.testing.assert_array_equal(ds.read([29, 3], layout="CYX"), np.stack([image(29), image(3)]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["images.parquet", "index.parquet"]),
    where=st.floats(min_value=0.0, max_value=0.9999),
    bit=st.integers(min_value=0, max_value=7),
)
def test_a_flipped_bit_anywhere_is_refused_or_the_right_pixels_are_served(
    base: Path, tmp_path_factory: pytest.TempPathFactory, name: str, where: float, bit: int
) -> None:
    root = tmp_path_factory.mktemp("flip") / "plate"
    shutil.copytree(base, root)
    data = bytearray((root / name).read_bytes())
    at = int(where * len(data))
    data[at] ^= 1 << bit
    (root / name).write_bytes(bytes(data))
    bounds = recorded_groups(root, name)["bounds"]
    damaged = next((g for g in range(len(bounds) - 1) if bounds[g] <= at < bounds[g + 1]), None)  # None: footer
    ds = OMEArrowDataset.scan(root)  # the manifest counts: no footer hashed yet
    assert len(ds) == 23
    for i in range(23):
        if damaged is None or i // PER_GROUP == damaged:  # a damaged footer: refused at the first read
            with pytest.raises(ChecksumError):
                read_cyx(ds, i)
        else:
            np.testing.assert_array_equal(read_cyx(ds, i), image(i))


def test_recorded_digests_read_as_the_tuple_of_their_digests() -> None:
    from ome_arrow_core.typed_chunk.group_records import HexSums

    digests = tuple(f"{i:016x}" for i in (7, 0xABC, 2**63))
    sums = HexSums("".join(digests))
    assert len(sums) == 3 and tuple(sums) == digests and sums == digests and sums[-1] == digests[2]
    assert sums[1:] == digests[1:] and hash(sums) == hash(digests) and sums == HexSums("".join(digests))
    assert sums != HexSums("".join(digests[:2])) and sums != list(digests)
    for k in (3, -4):
        with pytest.raises(IndexError):
            sums[k]


def test_records_written_as_lists_still_read_and_are_checked(plate: Path) -> None:
    """A manifest of a write before the lists were packed (``table_groups``, JSON numbers): read, checked."""

    def unpack(ours: dict[str, Any]) -> None:
        ours[GROUPS_KEY] = groups_of(ours)
        ours.pop(PACKED_GROUPS_KEY)

    edit_manifest(plate, unpack)
    bounds = recorded_groups(plate, "images.parquet")["bounds"]
    data = bytearray((plate / "images.parquet").read_bytes())
    data[(bounds[1] + bounds[2]) // 2] ^= 0x10  # row group 1: images 5..9
    (plate / "images.parquet").write_bytes(bytes(data))
    ds = OMEArrowDataset.scan(plate)
    assert len(ds) == 23
    np.testing.assert_array_equal(read_cyx(ds, 11), image(11))
    with pytest.raises(ChecksumError, match=r"row group 1 "):
        read_cyx(ds, 6)
