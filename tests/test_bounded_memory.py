"""Files that lie about their sizes fail fast, in little memory; large honest tables open in bounded memory.

Each case runs in a fresh subprocess that reports the growth of its peak resident memory
(VmHWM, Linux) over the operation, and Arrow's peak allocation; the bounds are loose (the
old code took 0.8-2.4 GiB resident, and allocated 6.7 GiB for the lying record).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import lying_files
from table_digests import with_unaligned_index, without_table_digests

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import DamagedFileError
from ome_arrow_core.typed_chunk.aligned_layout import INDEX_GROUPS_KEY

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from /proc")

_PROBE = r"""
import json, sys
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
import numpy as np, pyarrow.parquet, pyarrow.dataset
from ome_arrow_core import OMEArrow, OMEArrowDataset
before = peak()
try:
    result = {"ok": eval(sys.argv[2], {"OMEArrow": OMEArrow, "OMEArrowDataset": OMEArrowDataset, "path": sys.argv[1]})}
except Exception as exc:
    result = {"error": type(exc).__name__, "message": str(exc)}
result["added_mib"] = peak() - before
import pyarrow
result["arrow_peak_mib"] = pyarrow.default_memory_pool().max_memory() / 2**20  # allocated, touched or not
print(json.dumps(result))
"""


def probe(path: Path, expr: str) -> dict[str, object]:
    """Evaluate ``expr`` (with ``path``) in a fresh interpreter: its result or error, and the peak memory added."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), expr],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_an_index_of_8_million_rows_over_one_chunk_fails_fast_and_small(tmp_path: Path) -> None:
    path = lying_files.lying_index(tmp_path / "d.ome.parquet", rows=8_000_000)
    assert (path / "index.parquet").stat().st_size < 2 << 20  # the lie costs almost nothing on disk
    got = probe(path, "OMEArrow.scan(path).to_numpy().sum()")
    assert got["error"] == "DamagedFileError", got
    assert "index.parquet" in str(got["message"]) and "8000000" in str(got["message"])
    assert float(got["added_mib"]) < 200, got  # 2.4 GiB before


def _index_layout(path: Path, aligned: bool) -> Path:
    """``path`` with its index marked aligned (as written: loaded a row group at a time) or not (read whole)."""
    if not aligned:
        with_unaligned_index(path)
    assert (INDEX_GROUPS_KEY in (pq.read_metadata(path / "index.parquet").metadata or {})) == aligned
    return path


@pytest.mark.parametrize("aligned", [True, False])
def test_an_images_table_of_500000_rows_over_one_chunk_fails_fast_and_small(tmp_path: Path, aligned: bool) -> None:
    path = _index_layout(lying_files.images_table(tmp_path / "d.ome.parquet", rows=500_000, chunks=1), aligned)
    for how in ("OMEArrow.scan(path, row=7).to_numpy().sum()", "len(OMEArrowDataset.scan(path))"):
        got = probe(path, how)
        assert got["error"] == "DamagedFileError", got
        assert "images.parquet" in str(got["message"]) and "500000 images" in str(got["message"])
        assert float(got["added_mib"]) < 100, got  # 0.8 GiB before


@pytest.mark.parametrize("aligned", [True, False])
def test_an_honest_images_table_of_500000_rows_opens_in_bounded_memory(tmp_path: Path, aligned: bool) -> None:
    path = _index_layout(lying_files.images_table(tmp_path / "d.ome.parquet", rows=500_000, chunks=500_000), aligned)
    got = probe(path, "[int(OMEArrow.scan(path, row=r).to_numpy().sum()) for r in (0, 123_456, 499_999)]")
    assert got.get("ok") == [7, 7, 7], got
    # 1.2 GiB before (whole columns converted to Python lists); ~490 with the take-kernel read check, ~535-555 when
    # the check decoded every image id and dtype to a Python string and stacked (rows x 10) copies of the geometry;
    # ~335 since it compares them from the buffers 65,536 rows at a time, column by column (a first read's peak)
    assert float(got["added_mib"]) < 448, got


def test_a_small_record_claiming_60000x60000_fails_before_allocating(tmp_path: Path) -> None:
    rec = OMEArrow(np.ones((2, 3), np.uint16), "YX").export("dict")
    rec["pixels_meta"] = {**rec["pixels_meta"], "size_x": 60_000, "size_y": 60_000}
    file = tmp_path / "r.parquet"
    from ome_arrow_core.record.schema import ome_arrow_struct

    pq.write_table(pa.table({"ome_arrow": pa.array([rec], ome_arrow_struct(pa.uint16()))}), file)
    assert file.stat().st_size < 16 << 10
    got = probe(file, "OMEArrow.scan(path).to_numpy().sum()")
    assert got["error"] == "DamagedFileError", got
    assert "60000" in str(got["message"]), got
    assert float(got["added_mib"]) < 200, got
    assert float(got["arrow_peak_mib"]) < 200, got  # 6.7 GiB allocated (untouched) before
    with pytest.raises(DamagedFileError, match=r"planes hold 6 values; expected 1 planes of 60000x60000"):
        OMEArrow(rec)


def test_a_record_chunk_cannot_expand_past_its_codec() -> None:

    a = np.zeros((1, 1, 1, 64, 64), np.uint16)
    rec = OMEArrow(a).export("dict")
    raw = a.tobytes()
    blob = pa.Codec("lz4").compress(raw, asbytes=True)
    chunk = {
        "t": 0,
        "c": 0,
        "z": 0,
        "y": 0,
        "x": 0,
        "shape_z": 1,
        "shape_y": 64,
        "shape_x": 64,
        "dtype": "uint16",
        "compression": "lz4",
        "pixel_bytes": blob,
    }
    rec["planes"] = []
    rec["chunks"] = [chunk]
    np.testing.assert_array_equal(OMEArrow(rec).to_numpy(), a)  # honest: reads
    rec["pixels_meta"] = {**rec["pixels_meta"], "size_x": 60_000, "size_y": 60_000}
    rec["chunks"] = [{**chunk, "shape_y": 60_000, "shape_x": 60_000}]
    with pytest.raises(DamagedFileError, match="more than lz4 can expand to"):
        OMEArrow(rec)


def test_a_footer_claiming_more_bytes_than_the_file_has_is_refused(tmp_path: Path) -> None:
    from ome_arrow_core.parquet_files import footer_rows

    file = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": np.arange(1000)}), file)
    assert footer_rows(file) == 1000
    data = file.read_bytes()
    file.write_bytes(data[:4] + data[len(data) // 2 :])  # column bytes cut out, footer kept
    with pytest.raises(DamagedFileError, match=str(file)):
        footer_rows(file)


def test_reads_in_small_batches_equal_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ome_arrow_core.typed_chunk.chunk_reads as reader
    from ome_arrow_core import OMEArrowDataset, write_dataset

    arrs = [np.random.default_rng(k).integers(0, 60000, size=(1, 3, 2, 40, 50), dtype=np.uint16) for k in range(3)]
    out = write_dataset(arrs, tmp_path / "d", chunk_shape=(1, 16, 16), rows_per_group=2)
    whole = OMEArrowDataset.scan(out).read()
    crop = OMEArrow.scan(out, row=1).tensor_view(z=slice(0, 2), roi=(5, 3, 30, 30)).to_numpy()
    monkeypatch.setattr(reader, "READ_BATCH_BYTES", 1)  # every row group its own batch
    np.testing.assert_array_equal(OMEArrowDataset.scan(out).read(), whole)
    np.testing.assert_array_equal(whole, np.stack(arrs))  # TCZYX in, TCZYX out
    np.testing.assert_array_equal(
        OMEArrow.scan(out, row=1).tensor_view(z=slice(0, 2), roi=(5, 3, 30, 30)).to_numpy(), crop
    )
    np.testing.assert_array_equal(crop.reshape(3, 2, 30, 30), whole[1][0, :, 0:2, 3:33, 5:35])


def test_a_dataset_image_claiming_60000x60000_fails_before_allocating(tmp_path: Path) -> None:
    path = lying_files.small_dataset(tmp_path / "d.ome.parquet")  # one 16x16 chunk
    images = pq.read_table(path / "images.parquet")
    for name in ("size_y", "size_x", "chunk_y", "chunk_x"):
        images = images.set_column(images.schema.get_field_index(name), name, pa.array([60_000], pa.int32()))
    pq.write_table(images, path / "images.parquet")
    without_table_digests(path)  # a lie the table checksums would refuse first
    index = pq.read_table(path / "index.parquet")
    for name in ("shape_y", "shape_x"):  # the index agrees: coverage checks pass
        index = index.set_column(index.schema.get_field_index(name), name, pa.array([60_000], pa.int32()))
    pq.write_table(index, path / "index.parquet")
    without_table_digests(path)  # a lie the table checksums would refuse first
    got = probe(path, "OMEArrow.scan(path).to_numpy().sum()")
    assert got["error"] == "DamagedFileError", got
    # refused by the size check of the index path, or by the pixel locator's length check (one chunk: located)
    assert "declares 7200000000 bytes" in str(got["message"]) or "are 7200000000" in str(got["message"]), got
    assert float(got["arrow_peak_mib"]) < 200, got  # 6.7 GiB allocated before the chunk's size was checked


def test_repeated_chunks_of_a_dictionary_encoded_file_still_read(tmp_path: Path) -> None:
    """ome-arrow 0.1.0 dictionary-encodes pixel_bytes: equal chunks are stored once, so bytes bound nothing there."""
    path = tmp_path / "d.ome.parquet"
    OMEArrow(np.zeros((4, 64, 64), np.uint16), "ZYX").export("parquet", path, chunk_shape=(1, 32, 32))
    chunks = pq.read_table(path / "chunks.parquet")
    pq.write_table(chunks, path / "chunks.parquet", row_group_size=chunks.num_rows)  # dictionary pages, one group
    assert pq.read_metadata(path / "chunks.parquet").row_group(0).column(13).has_dictionary_page
    index = pq.read_table(path / "index.parquet")
    index = index.set_column(
        index.schema.get_field_index("row_group_id"), "row_group_id", pa.array(np.zeros(index.num_rows, np.int32))
    )
    index = index.set_column(
        index.schema.get_field_index("row_index_in_group"),
        "row_index_in_group",
        pa.array(np.arange(index.num_rows, dtype=np.int32)),
    )
    pq.write_table(index, path / "index.parquet")
    without_table_digests(path)  # a lie the table checksums would refuse first
    np.testing.assert_array_equal(OMEArrow.scan(path).to_numpy(), np.zeros((1, 1, 4, 64, 64), np.uint16))


def test_a_record_file_whose_footer_claims_more_bytes_than_it_has_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "r.parquet"
    OMEArrow(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), "YX").export("parquet", file, layout="record")
    np.testing.assert_array_equal(OMEArrow(file).to_numpy().reshape(64, 64), np.arange(64 * 64).reshape(64, 64))
    data = file.read_bytes()
    file.write_bytes(data[:4] + data[len(data) // 2 :])  # column bytes cut out, footer kept
    with pytest.raises(DamagedFileError, match=f"{file}.*bytes of column data"):
        OMEArrow(file)


def test_reading_a_crop_imports_neither_pandas_nor_pyarrow_dataset(tmp_path: Path) -> None:
    """Each costs 36-54 MiB resident when imported; a crop needs neither (it added +131 MiB, now ~+84)."""
    path = tmp_path / "d.ome.parquet"
    OMEArrow(np.arange(2 * 3 * 64 * 64, dtype=np.uint16).reshape(2, 3, 64, 64), "ZCYX").export(
        "parquet", path, chunk_shape=(1, 32, 32)
    )
    code = (
        "import sys, json; import pyarrow as pa; from ome_arrow_core import OMEArrow\n"
        f"crop = OMEArrow.scan({str(path)!r}).tensor_view(z=1, c=2, roi=(10, 20, 30, 30), layout='YX').to_numpy()\n"
        "print(json.dumps({'sum': int(crop.sum()), 'modules': [m for m in ('pandas', 'pyarrow.dataset') "
        "if m in sys.modules]}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    want = np.arange(2 * 3 * 64 * 64, dtype=np.uint16).reshape(2, 3, 64, 64)[1, 2, 20:50, 10:40]
    assert got == {"sum": int(want.sum()), "modules": []}
