"""A flipped pixel byte in anything we write is detected on read (ChecksumError) and by verify().

Every storage kind we write is damaged on disk: where the pixel bytes are stored as they
are (uncompressed Parquet, Vortex), one byte of a unique pattern is flipped in the file;
where they are compressed, the chunk table is rewritten with one pixel byte changed (a
well-formed file whose pixels are wrong, which only the checksum can tell).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from table_digests import without_table_digests

from ome_arrow_core import OMEArrow, OMEArrowDataset, Selection, verify, write_dataset
from ome_arrow_core.buffers import arrow_base
from ome_arrow_core.checksums import ENV
from ome_arrow_core.errors import ChecksumError, DamagedFileError

SHAPE = (2, 3, 40, 48)  # ZCYX


def pixels() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 65535, SHAPE, dtype=np.uint16)


def flip_pattern(file: Path, pattern: bytes) -> None:
    """Flip one bit of the one place ``pattern`` is stored in ``file``."""
    raw = bytearray(file.read_bytes())
    at = raw.find(pattern)
    assert at >= 0 and raw.find(pattern, at + 1) < 0, "the pattern must be stored once, as is"
    raw[at + 3] ^= 0x10
    file.write_bytes(bytes(raw))


def pattern_of(a: np.ndarray) -> bytes:
    """16 bytes of the pixels of image plane z=1, c=2 (one chunk when chunks are planes)."""
    return np.ascontiguousarray(a[1, 2, 20, 8:16]).tobytes()


def rewrite_chunks(file: Path, pattern: bytes) -> None:
    """Rewrite a Parquet chunks file (same row groups, codec, metadata) with one pixel byte changed."""
    pf = pq.ParquetFile(file)
    codec = pf.metadata.row_group(0).column(pf.schema_arrow.names.index("pixel_bytes")).compression.lower()
    table = pf.read()
    blobs = table.column("pixel_bytes").to_pylist()
    hits = [i for i, b in enumerate(blobs) if pattern in b]
    assert len(hits) == 1
    b = bytearray(blobs[hits[0]])
    b[b.find(pattern) + 3] ^= 0x10
    blobs[hits[0]] = bytes(b)
    at = table.schema.get_field_index("pixel_bytes")
    table = table.set_column(at, table.schema.field(at), pa.array(blobs, pa.large_binary()))
    sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    with pq.ParquetWriter(file, table.schema, compression=codec) as writer:
        start = 0
        for n in sizes:  # the same row groups as before: the index points into them
            writer.write_table(table.slice(start, n), row_group_size=n)
            start += n


def damage_dataset(out: Path, a: np.ndarray, how: str) -> None:
    chunks = next(p for p in out.iterdir() if p.name.startswith("chunks"))
    if how == "flip":
        flip_pattern(chunks, pattern_of(a))
    else:
        rewrite_chunks(chunks, pattern_of(a))


DATASETS = [  # (write options, how the chunk bytes are damaged)
    ({"compression": None}, "flip"),
    ({"compression": "lz4"}, "rewrite"),
    ({"compression": "zstd"}, "rewrite"),
    ({"compression": None, "chunk_shape": (1, 20, 24)}, "flip"),
    ({"compression": "lz4", "rows_per_group": 4}, "rewrite"),
]


def write(kind: str, out: Path, a: np.ndarray, **options: Any) -> None:
    img = OMEArrow(a, "ZCYX")
    if kind == "dataset":
        img.export("parquet", out, **options)
    elif kind == "vortex-dataset":
        pytest.importorskip("vortex")
        write_dataset([(img.meta, img.to_numpy(layout="TCZYX"))], out, chunk_format="vortex", **options)
    elif kind == "record":
        img.export("parquet", out, layout="record", **options)
    else:
        pytest.importorskip("vortex")
        img.export("vortex", out, **options)


@pytest.mark.parametrize(("options", "how"), DATASETS)
def test_flipped_pixel_byte_in_a_dataset_is_detected(
    options: dict[str, Any], how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = pixels()
    out = tmp_path / "d.ome.parquet"
    write("dataset", out, a, **options)
    assert verify(out).ok
    damage_dataset(out, a, how)
    with pytest.raises(ChecksumError, match=r"chunk \d+ of image .*verify"):
        OMEArrow.scan(out).to_numpy()
    with pytest.raises(ChecksumError):  # a crop inside the damaged chunk
        OMEArrow.scan(out).tensor_view(z=1, c=2, roi=(0, 0, 24, 24)).to_numpy()
    report = verify(out)
    assert not report.ok and report.damage[0].image_id is not None and report.damage[0].chunk_id is not None
    # switched off, the damaged pixels are served: the user's choice
    got = OMEArrow.scan(out, verify=False).to_numpy(layout="TZCYX")
    assert got.shape == (1, 2, 3, 40, 48) and not np.array_equal(got[0], a.transpose(0, 1, 2, 3))
    monkeypatch.setenv(ENV, "0")
    assert not np.array_equal(OMEArrow.scan(out).to_numpy()[0], a)


def test_zero_copy_whole_chunk_read_is_checked(tmp_path: Path) -> None:
    a = pixels()
    out = tmp_path / "d.ome.parquet"
    write("dataset", out, a, compression=None)
    src = OMEArrow.scan(out).source
    whole = Selection(range(0, 1), range(1, 2), range(2, 3), range(40), range(48))
    view = src.read(whole)
    buf = arrow_base(view)  # a view of the Parquet read buffer: checking the checksum copied nothing
    assert buf is not None and buf.address <= view.ctypes.data < buf.address + buf.size
    assert np.array_equal(view[0, 0, 0], a[1, 2])
    damage_dataset(out, a, "flip")
    with pytest.raises(ChecksumError):
        OMEArrow.scan(out).source.read(whole)


def test_batched_dataset_reads_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = pixels()
    out = tmp_path / "d.ome.parquet"
    img = OMEArrow(a, "ZCYX")
    write_dataset(
        [(img.meta, img.to_numpy(layout="TCZYX")), (img.meta, img.to_numpy(layout="TCZYX"))], out, compression="lz4"
    )
    damage_dataset_twice = out / "chunks.parquet"
    table = pq.read_table(damage_dataset_twice)
    blobs = table.column("pixel_bytes").to_pylist()
    b = bytearray(blobs[-1])
    b[5] ^= 1
    blobs[-1] = bytes(b)
    table = table.set_column(
        table.schema.get_field_index("pixel_bytes"), "pixel_bytes", pa.array(blobs, pa.large_binary())
    )
    pq.write_table(table, damage_dataset_twice, compression="lz4", row_group_size=1)
    ds = OMEArrowDataset.scan(out)
    with pytest.raises(ChecksumError, match="image-00001"):
        ds.read()
    with pytest.raises(ChecksumError, match="image-00001"):
        ds[1].to_numpy()
    with pytest.raises(ChecksumError, match="image-00001"):
        ds.select([1]).read()
    ds[0].to_numpy()  # the other image is intact
    unchecked = OMEArrowDataset.scan(out, verify=False)
    assert unchecked.read().shape[0] == 2 and unchecked.select([1])[0].to_numpy() is not None
    monkeypatch.setenv(ENV, "0")
    assert ds.read() is not None


def test_flipped_pixel_byte_in_a_vortex_dataset_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = pixels()
    write("vortex-dataset", tmp_path / "z.ome.parquet", a, compression="zstd")
    assert verify(tmp_path / "z.ome.parquet").ok
    out = tmp_path / "v.ome.parquet"
    write("vortex-dataset", out, a, compression="none")
    assert verify(out).ok
    flip_pattern(out / "chunks.vortex", pattern_of(a))
    with pytest.raises(ChecksumError, match="chunks.vortex"):  # the whole-file checksum, before vortex parses it
        OMEArrow.scan(out).to_numpy()
    assert not verify(out).ok
    monkeypatch.setenv(ENV, "0")  # a chunk file's whole-file check follows the environment
    assert OMEArrow.scan(out, verify=False).to_numpy(layout="TZCYX").shape == (1, 2, 3, 40, 48)


def test_flipped_pixel_byte_in_a_record_file_is_detected(tmp_path: Path) -> None:
    a = pixels()
    out = tmp_path / "r.ome.parquet"
    write("record", out, a, compression="zstd")
    assert verify(out).ok
    table = pq.read_table(out)
    values = table.column("ome_arrow").combine_chunks()
    planes = values.field("planes").values
    flat = planes.field("pixels").values.to_numpy(zero_copy_only=False).copy()
    flat[1234] ^= 1
    new_pixels = pa.ListArray.from_arrays(planes.field("pixels").offsets, pa.array(flat, pa.uint16()))
    new_planes = pa.StructArray.from_arrays(
        [planes.field(n) if n != "pixels" else new_pixels for n in [f.name for f in planes.type]],
        fields=list(planes.type),
    )
    lists = pa.ListArray.from_arrays(values.field("planes").offsets, new_planes, type=values.type.field("planes").type)
    record = pa.StructArray.from_arrays(
        [values.field(f.name) if f.name != "planes" else lists for f in values.type], fields=list(values.type)
    )
    pq.write_table(pa.table({"ome_arrow": record}).replace_schema_metadata(table.schema.metadata), out)
    with pytest.raises(ChecksumError, match="plane 0 of row 0"):
        OMEArrow.scan(out).to_numpy()
    assert not verify(out).ok
    assert OMEArrow.scan(out, verify=False).to_numpy(layout="TZCYX").shape == (1, 2, 3, 40, 48)


def test_flipped_pixel_byte_in_a_vortex_file_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = pixels()
    out = tmp_path / "x.vortex"
    write("vortex", out, a)
    assert verify(out).ok
    flip_pattern(out, pattern_of(a))
    with pytest.raises(ChecksumError, match="x.vortex.*whole-file checksum"):  # checked before vortex parses it
        OMEArrow.scan(out)
    report = verify(out)
    assert len(report.damage) == 1 and "whole-file checksum" in report.damage[0].problem
    assert OMEArrow.scan(out, verify=False).to_numpy(layout="TZCYX").shape == (1, 2, 3, 40, 48)
    monkeypatch.setenv(ENV, "0")
    OMEArrow.scan(out).to_numpy()


def test_verification_is_on_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    a = pixels()
    for kind, name in (("dataset", "d.ome.parquet"), ("vortex", "x.vortex")):
        out = tmp_path / name
        write(kind, out, a, compression="none")
        if kind == "dataset":
            damage_dataset(out, a, "flip")
        else:
            flip_pattern(out, pattern_of(a))
        with pytest.raises(DamagedFileError):
            OMEArrow.scan(out).to_numpy()


def test_files_without_checksums_still_read_and_verify_says_so(tmp_path: Path) -> None:
    a = pixels()
    out = tmp_path / "d.ome.parquet"
    write("dataset", out, a, compression=None)
    index = pq.read_table(out / "index.parquet")
    pq.write_table(index.drop_columns(["checksum"]), out / "index.parquet")
    without_table_digests(out)  # a lie the table checksums would refuse first
    assert np.array_equal(OMEArrow.scan(out).to_numpy(layout="TZCYX")[0], a)
    report = verify(out)
    assert report.ok and report.unchecked == report.chunks > 0 and report.checksummed == 0
    assert any("without checksums" in n for n in report.notes)
    damage_dataset(out, a, "flip")  # no checksum: the flip cannot be seen by the index...
    assert not np.array_equal(OMEArrow.scan(out).to_numpy()[0], a)
    assert not verify(out).ok  # ...but verify still finds it through the Parquet page checksums


def test_reference_reads_our_checksummed_output(tmp_path: Path, make_pixels: Callable[..., np.ndarray]) -> None:
    pytest.importorskip("ome_arrow", reason="needs the reference package: pip install ome-arrow==0.1.0")
    from ome_arrow.dataset import OMEArrowDataset as RefDataset
    from ome_arrow.ingest import from_ome_parquet

    a = make_pixels((1, 2, 3, 20, 24), "uint16", seed=5)
    OMEArrow(a).export("parquet", tmp_path / "d.ome.parquet")
    assert pq.read_schema(tmp_path / "d.ome.parquet" / "index.parquet").field("checksum").type == pa.uint64()
    assert np.array_equal(np.asarray(RefDataset(tmp_path / "d.ome.parquet").read_image(None)), a)
    OMEArrow(a).export("parquet", tmp_path / "r.parquet", layout="record")
    assert b"ome_arrow_core.checksums" in pq.read_schema(tmp_path / "r.parquet").metadata
    assert from_ome_parquet(str(tmp_path / "r.parquet")) is not None


def test_appends_to_a_dataset_without_checksums_and_compaction_keep_them(tmp_path: Path) -> None:
    from ome_arrow_core import compact_dataset

    a = pixels()
    img = OMEArrow(a, "ZCYX")
    out = tmp_path / "d.ome.parquet"
    write("dataset", out, a, compression=None)
    index = pq.read_table(out / "index.parquet")
    pq.write_table(index.drop_columns(["checksum"]), out / "index.parquet")  # as written before checksums
    without_table_digests(out)  # a lie the table checksums would refuse first
    write_dataset([(img.meta, img.to_numpy(layout="TCZYX"))], out, mode="append", compression=None)
    report = verify(out)
    assert report.ok and report.checksummed == report.unchecked == 6
    compact_dataset(out)
    assert pq.read_table(out / "index.parquet").column("checksum").null_count == 6
    flip_pattern_at = out / "chunks.parquet"
    raw = bytearray(flip_pattern_at.read_bytes())
    pattern = pattern_of(a)
    second = raw.find(pattern, raw.find(pattern) + 1)  # the appended image's copy of the plane
    raw[second + 3] ^= 0x10
    flip_pattern_at.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError, match="image-00001"):
        OMEArrowDataset.scan(out).read()


def test_each_chunk_is_checked_once_per_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ome_arrow_core.checksums import ChunkChecksums

    a = pixels()
    out = tmp_path / "d.ome.parquet"
    write("dataset", out, a, compression="lz4")
    calls: list[int] = []
    real = ChunkChecksums.compare

    def counted(self: ChunkChecksums, row: int, *args: Any) -> Any:
        calls.append(row)
        return real(self, row, *args)

    monkeypatch.setattr(ChunkChecksums, "compare", counted)
    OMEArrowDataset.scan(out).read([0, 0, 0])  # the same image three times: its 6 chunks placed 3 times each
    assert sorted(calls) == list(range(6))
    calls.clear()
    OMEArrow.scan(out).tensor_view(z=[1, 1, 0], c=2).to_numpy()  # z=1 placed twice
    assert sorted(calls) == [4, 5]  # chunks are stored in TCZYX order: c=2 holds rows 4 (z=0) and 5 (z=1)
