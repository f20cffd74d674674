"""Chunks read by page ranges (index ``page_offset``/sizes, manifest ``page_ranges``): bit-exact for every
codec and dtype, equal to the Parquet path, no footer parse on a crop, and every lying range refused."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pixels import random_pixels
from table_digests import with_unaligned_index, without_table_digests

from ome_arrow_core import OMEArrow, OMEArrowDataset, compact_dataset, verify, write_dataset
from ome_arrow_core.dtypes import SUPPORTED
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import DatasetSource
from ome_arrow_core.typed_chunk.grouped_reads import ranged_piece
from ome_arrow_core.typed_chunk.opening import open_dataset
from ome_arrow_core.typed_chunk.page_index import MANIFEST_KEY, RANGE_COLUMNS
from ome_arrow_core.typed_chunk.page_reads import AUDIT_BY_FOOTER
from ome_arrow_core.typed_chunk.parquet_pages import (
    CODECS,
    DATA_PAGE,
    DATA_PAGE_V2,
    DICTIONARY_PAGE,
    page_header,
    page_ranges,
)

CODEC_NAMES = ["none", "lz4", "zstd", "snappy", "gzip", "brotli"]
DTYPES = list(SUPPORTED)
REFERENCE = Path(__file__).parent / "data" / "reference"


def pixels(dtype: str, shape: tuple[int, ...] = (2, 3, 40, 48), seed: int = 7) -> np.ndarray:
    return random_pixels(shape, dtype, seed)


def export(a: np.ndarray, out: Path, **options: Any) -> OMEArrow:
    img = OMEArrow(a, "ZCYX")
    img.export("parquet", out, **options)
    return img


def index_of(out: Path) -> pa.Table:
    return pq.read_table(out / "index.parquet")


def set_index(out: Path, row: int, **values: int) -> None:
    """Rewrite index.parquet with ``values`` (column -> value) in row ``row``."""
    table = index_of(out)
    for name, value in values.items():
        at = table.schema.get_field_index(name)
        col = table.column(name).to_numpy().copy()
        col[row] = value
        table = table.set_column(at, table.schema.field(at), pa.array(col, table.schema.field(at).type))
    pq.write_table(table, out / "index.parquet")
    without_table_digests(out)  # a lie the table checksums would refuse first


def drop_ranges(out: Path) -> None:
    """Make the dataset one without page ranges (as written before them): no index columns, no manifest entry."""
    pq.write_table(index_of(out).drop(list(RANGE_COLUMNS)), out / "index.parquet")
    without_table_digests(out)  # a lie the table checksums would refuse first
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    manifest["ome_arrow_core"].pop(MANIFEST_KEY)
    (out / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))


def fragment_kind(out: Path, code: int = 0) -> str:
    """The class reading chunks file ``code`` of the dataset at ``out`` (PageFragment: by page ranges)."""
    return type(DatasetSource(out)._opened.fragment(code)).__name__


def values_by_chunk(out: Path) -> dict[int, bytes]:
    """Each chunk's pixel_bytes, read through pyarrow's Parquet reader."""
    table = pq.read_table(out / "chunks.parquet", columns=["chunk_id", "pixel_bytes"])
    return dict(zip(table.column("chunk_id").to_pylist(), table.column("pixel_bytes").to_pylist()))


@pytest.mark.parametrize("codec", CODEC_NAMES)
def test_every_codec_records_ranges_that_locate_each_chunk(codec: str, tmp_path: Path) -> None:
    out = tmp_path / "d.ome.parquet"
    a = pixels("uint16")
    img = export(a, out, compression=codec, chunk_shape=(1, 20, 24))
    manifest = json.loads((out / "_ome_arrow_dataset.json").read_text())
    entry = manifest["ome_arrow_core"][MANIFEST_KEY]["chunks.parquet"]
    assert entry == {
        "codec": CODECS[pq.read_metadata(out / "chunks.parquet").row_group(0).column(13).compression] or "none",
        "bytes": (out / "chunks.parquet").stat().st_size,
    }
    index = index_of(out)
    raw = (out / "chunks.parquet").read_bytes()
    stored = values_by_chunk(out)
    for chunk, start, size, full in zip(*(index.column(c).to_pylist() for c in ["chunk_id", *RANGE_COLUMNS[:3]])):
        page = raw[start : start + size]
        body = (
            page if codec == "none" else pa.Codec(entry["codec"]).decompress(page, decompressed_size=full).to_pybytes()
        )
        assert body.endswith(stored[chunk]) and len(body) == full  # levels, length, then the value
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), img.to_numpy())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    codec=st.sampled_from(CODEC_NAMES),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
    ny=st.integers(1, 50),
    nx=st.integers(1, 50),
    cy=st.integers(1, 32),
    cx=st.integers(1, 32),
)
def test_ranged_reads_are_bit_exact_and_equal_the_parquet_path(
    tmp_path_factory: pytest.TempPathFactory, codec: str, dtype: str, seed: int, ny: int, nx: int, cy: int, cx: int
) -> None:
    root = tmp_path_factory.mktemp("r")
    a = pixels(dtype, (2, 2, ny, nx), seed)
    img = export(a, root / "ranged", compression=codec, chunk_shape=(1, cy, cx))
    export(a, root / "plain", compression=codec, chunk_shape=(1, cy, cx))
    drop_ranges(root / "plain")
    assert fragment_kind(root / "ranged") == "PageFragment"
    ranged, plain = OMEArrow.scan(root / "ranged"), OMEArrow.scan(root / "plain")
    want = img.to_numpy()
    np.testing.assert_array_equal(ranged.to_numpy(), want)
    np.testing.assert_array_equal(plain.to_numpy(), want)
    roi = (nx // 4, ny // 3, max(1, nx // 2), max(1, ny // 2))  # x, y, width, height
    crop = ranged.tensor_view(z=1, c=0, roi=roi).to_numpy()
    np.testing.assert_array_equal(crop, plain.tensor_view(z=1, c=0, roi=roi).to_numpy())
    assert crop.dtype == np.dtype(dtype)


def wreck_footer(file: Path) -> None:
    """Zero the footer of a Parquet file, keeping its size: a reader that parses it fails."""
    raw = bytearray(file.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little")
    raw[len(raw) - 8 - footer : len(raw) - 8] = bytes(footer)
    file.write_bytes(bytes(raw))


def test_a_crop_never_parses_the_chunks_footer(tmp_path: Path) -> None:
    out = tmp_path / "d.ome.parquet"
    a = pixels("uint16")
    img = export(a, out, chunk_shape=(1, 20, 24))
    wreck_footer(out / "chunks.parquet")
    np.testing.assert_array_equal(
        OMEArrow.scan(out).tensor_view(z=1, c=2, roi=(0, 0, 24, 24)).to_numpy(),
        img.tensor_view(z=1, c=2, roi=(0, 0, 24, 24)).to_numpy(),
    )
    whole = OMEArrow.scan(out)
    for z in range(2):  # 24 chunks, fewer than AUDIT_BY_FOOTER: a first read decodes their rows
        np.testing.assert_array_equal(whole.tensor_view(z=z).to_numpy(), img.tensor_view(z=z).to_numpy())
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), img.to_numpy()[None])
    drop_ranges(out)  # the same file through its footer: refused
    with pytest.raises(DamagedFileError):
        OMEArrow.scan(out).tensor_view(z=1, c=2, roi=(0, 0, 24, 24)).to_numpy()


def ranged_dataset(tmp_path: Path, codec: str = "lz4") -> tuple[Path, OMEArrow]:
    out = tmp_path / "d.ome.parquet"
    return out, export(pixels("uint16"), out, compression=codec, chunk_shape=(1, 20, 24))


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
@pytest.mark.parametrize(
    "lie",
    [
        "past_eof",
        "into_other_chunk",
        "compressed_plus_one",
        "compressed_minus_one",
        "uncompressed_plus_one",
        "uncompressed_minus_one",
        "before_start",
        "zero_size",
    ],
)
def test_lying_page_ranges_are_refused(codec: str, lie: str, tmp_path: Path) -> None:
    out, _ = ranged_dataset(tmp_path, codec)
    index = index_of(out)
    off, csize, usize = (index.column(c).to_pylist() for c in RANGE_COLUMNS[:3])
    size = (out / "chunks.parquet").stat().st_size
    change = {
        "past_eof": {"page_offset": size - 8},
        "into_other_chunk": {"page_offset": off[1] + 3},
        "compressed_plus_one": {
            "page_compressed_size": csize[0] + 1,
            **({"page_uncompressed_size": usize[0] + 1} if codec == "none" else {}),
        },
        "compressed_minus_one": {
            "page_compressed_size": csize[0] - 1,
            **({"page_uncompressed_size": usize[0] - 1} if codec == "none" else {}),
        },
        "uncompressed_plus_one": {"page_uncompressed_size": usize[0] + 1},
        "uncompressed_minus_one": {"page_uncompressed_size": usize[0] - 1},
        "before_start": {"page_offset": 0},
        "zero_size": {"page_compressed_size": 0},
    }[lie]
    set_index(out, 0, **change)
    with pytest.raises(DamagedFileError, match="chunks.parquet"):  # chunk 0 alone: read by its range
        OMEArrow.scan(out).tensor_view(z=0, c=0, roi=(0, 0, 24, 20)).to_numpy()


def test_a_range_of_another_chunk_is_refused(tmp_path: Path) -> None:
    out, _img = ranged_dataset(tmp_path, "none")
    index = index_of(out)
    ranges = [index.column(c).to_pylist() for c in RANGE_COLUMNS]
    set_index(out, 0, page_offset=ranges[0][1])  # two rows, one page: refused as overlapping
    with pytest.raises(DamagedFileError, match="overlapping"):
        OMEArrow.scan(out).to_numpy()
    set_index(out, 0, **{c: v[1] for c, v in zip(RANGE_COLUMNS, ranges)})  # the ranges of two rows swapped
    set_index(out, 1, **{c: v[0] for c, v in zip(RANGE_COLUMNS, ranges)})
    with pytest.raises(DamagedFileError, match="stored in order"):
        OMEArrow.scan(out).to_numpy()


def test_a_row_group_holding_another_chunk_is_refused(tmp_path: Path) -> None:
    """The first read of a chunk decodes its row's id and image from the bytes before its page, as the footer path."""
    for column, match in (("chunk_id", "holds chunk"), ("image_id", "someone-else")):
        out, _ = ranged_dataset(tmp_path / column, "lz4")
        table = index_of(out)
        values = table.column(column).to_pylist()
        values[0] = 99 if column == "chunk_id" else "someone-else"
        table = table.set_column(
            table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type)
        )
        pq.write_table(table, out / "index.parquet")
        without_table_digests(out)  # a lie the table checksums would refuse first
        with pytest.raises(DamagedFileError, match=match):
            OMEArrow.scan(out, verify=False).to_numpy()


def test_a_swapped_page_fails_its_checksum(tmp_path: Path) -> None:
    """Two chunks' pages (same size, uncompressed) swapped in the file: well-formed, but the pixels are wrong."""
    out, img = ranged_dataset(tmp_path, "none")
    index = index_of(out)
    off, csize = index.column("page_offset").to_pylist(), index.column("page_compressed_size").to_pylist()
    raw = bytearray((out / "chunks.parquet").read_bytes())
    a, b = bytes(raw[off[0] : off[0] + csize[0]]), bytes(raw[off[1] : off[1] + csize[1]])
    assert len(a) == len(b)
    raw[off[0] : off[0] + csize[0]], raw[off[1] : off[1] + csize[1]] = b, a
    (out / "chunks.parquet").write_bytes(bytes(raw))
    with pytest.raises(ChecksumError):
        OMEArrow.scan(out).to_numpy()
    assert not np.array_equal(OMEArrow.scan(out, verify=False).to_numpy(), img.to_numpy())  # only the checksum tells


def test_a_truncated_chunks_file_raises(tmp_path: Path) -> None:
    out, img = ranged_dataset(tmp_path)
    ds = OMEArrow.scan(out)
    np.testing.assert_array_equal(ds.to_numpy(), img.to_numpy())
    with open(out / "chunks.parquet", "r+b") as f:
        f.truncate(os.path.getsize(out / "chunks.parquet") // 2)
    with pytest.raises(DamagedFileError):
        OMEArrow.scan(out).to_numpy()


def test_a_chunks_file_truncated_while_open_raises(tmp_path: Path) -> None:
    out, _ = ranged_dataset(tmp_path)
    frag = DatasetSource(out)._opened.fragment(0)
    os.truncate(out / "chunks.parquet", int(frag.offset[5]) + 1)
    with pytest.raises(DamagedFileError, match="truncated"):
        frag.read(np.array([5, 6]))


def test_datasets_without_ranges_still_read(tmp_path: Path) -> None:
    out, img = ranged_dataset(tmp_path)
    drop_ranges(out)
    assert fragment_kind(out) == "ParquetFragment"
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), img.to_numpy())
    for ref in sorted(REFERENCE.glob("*.ome-arrow")):  # ome-arrow 0.1.0's datasets
        ds = OMEArrowDataset.scan(ref)
        assert all(ds[k].to_numpy().size for k in range(len(ds)))


def test_other_layouts_get_no_ranges(tmp_path: Path) -> None:
    out = tmp_path / "d.ome.parquet"
    a = pixels("uint16")
    img = export(a, out, chunk_shape=(1, 20, 24), rows_per_group=4)
    assert MANIFEST_KEY not in json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    assert index_of(out).column("page_offset").null_count == index_of(out).num_rows
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), img.to_numpy())


def test_a_rewritten_chunks_file_is_read_through_its_footer(tmp_path: Path) -> None:
    out, img = ranged_dataset(tmp_path)
    table = pq.read_table(out / "chunks.parquet")
    pq.write_table(table, out / "chunks.parquet", row_group_size=1, compression="zstd")  # other sizes, other places
    assert fragment_kind(out) == "ParquetFragment"
    np.testing.assert_array_equal(OMEArrow.scan(out).to_numpy(), img.to_numpy())


@pytest.mark.parametrize("aligned", [True, False])
def test_appends_record_each_file_and_compaction_drops_the_ranges(tmp_path: Path, aligned: bool) -> None:
    out = tmp_path / "d"
    arrs = [pixels("uint16", (1, 2, 30, 30), seed=s) for s in range(3)]
    write_dataset([arrs[0]], out, chunk_shape=(1, 16, 16))
    write_dataset([arrs[1]], out, mode="append", compression="zstd", chunk_shape=(1, 16, 16))
    listed = json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"][MANIFEST_KEY]
    assert {k: v["codec"] for k, v in listed.items()} == {"chunks.parquet": "none", "chunks-00001.parquet": "zstd"}
    if not aligned:
        with_unaligned_index(out)  # the base's index as older writers wrote it: the plate's indexes read whole
    got = OMEArrowDataset.scan(out).read()
    assert [np.array_equal(np.sort(got[k], axis=None), np.sort(arrs[k], axis=None)) for k in (0, 1)] == [True, True]
    opened = open_dataset(out)  # as the read left it: every index row group loaded
    assert (opened.aligned is not None) == aligned
    for k in (0, 1):  # each file read by its page ranges (an aligned index's: a piece per index row group)
        groups = np.unique(opened.columns["row_group_id"][opened.fragment_code == k]).astype(np.int64)
        assert len(groups) and ranged_piece(opened.fragment(k), groups) is not None
    out = tmp_path / "e"  # compaction merges files of one codec
    write_dataset([arrs[0]], out, chunk_shape=(1, 16, 16))
    write_dataset([arrs[2]], out, mode="append", chunk_shape=(1, 16, 16))
    want = OMEArrowDataset.scan(out).read()
    compact_dataset(out)
    assert MANIFEST_KEY not in json.loads((out / "_ome_arrow_dataset.json").read_text())["ome_arrow_core"]
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), want)


def test_page_headers_of_every_kind_pyarrow_writes(tmp_path: Path) -> None:
    file = tmp_path / "p.parquet"
    values = pa.array([b"ab" * 50, b"ab" * 50, b"cd" * 300], pa.large_binary())
    for version in ("1.0", "2.0"):
        for stats in (False, True):
            pq.write_table(
                pa.table({"v": values}),
                file,
                data_page_version=version,
                write_statistics=stats,
                use_dictionary=True,
                compression="zstd",
                write_page_checksum=True,
            )
            col = pq.read_metadata(file).row_group(0).column(0)
            raw = file.read_bytes()
            dictionary = page_header(raw[col.dictionary_page_offset :])
            assert dictionary.type == DICTIONARY_PAGE and dictionary.num_values == 2
            data = page_header(raw[col.data_page_offset :])
            assert data.type == (DATA_PAGE if version == "1.0" else DATA_PAGE_V2) and data.num_values == 3
            assert data.crc is not None
            end = col.data_page_offset + data.size + data.compressed_size
            assert dictionary.size + dictionary.compressed_size + data.size + data.compressed_size == (
                col.total_compressed_size
            ) and end <= len(raw)
            if version == "2.0":
                assert data.definition_levels_bytes >= 0 and data.repetition_levels_bytes == 0
            assert page_ranges(file, "v") is None  # three values, a dictionary: not one page per chunk
    with pytest.raises(ValueError):
        page_header(b"\x15")  # a field header, then nothing


def test_verify_checks_the_recorded_page_ranges(tmp_path: Path) -> None:
    out, _ = ranged_dataset(tmp_path)
    assert verify(out).ok
    set_index(out, 2, page_offset=index_of(out).column("page_offset")[2].as_py() + 1)
    report = verify(out)
    assert not report.ok
    assert [(Path(d.file).name, d.chunk_id) for d in report.damage if "page range" in d.problem] == [
        ("chunks.parquet", 2)
    ]


def test_a_large_first_read_is_audited_through_the_footer(tmp_path: Path) -> None:
    """Many chunks read for the first time: their rows are checked by the Parquet reader (footer parsed once)."""
    out = tmp_path / "d.ome.parquet"
    img = export(pixels("uint16"), out, chunk_shape=(1, 4, 4))
    assert 2 * 3 * 10 * 12 >= AUDIT_BY_FOOTER
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), img.to_numpy()[None])
    wreck_footer(out / "chunks.parquet")
    with pytest.raises(DamagedFileError):
        OMEArrowDataset.scan(out).read()
