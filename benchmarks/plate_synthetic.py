"""A synthetic plate of N images built with pyarrow in seconds, in the layout ``write_dataset`` writes.

``write_dataset`` costs about a millisecond of Python per image (a million images: minutes on a quiet machine,
much longer on a shared one). This builds the same dataset directly
(vectorized, streamed a row group at a time: ~230 MiB peak RSS at 100,000 images of 64x64): images.parquet and the aligned index.parquet in groups of 1,024 images
(``write_aligned_index``, the writer's own function; images statistics on the columns ``write_dataset`` writes them
for), chunks.parquet by the writer's ``chunk_writer`` with as many chunks to a row group as its packer shares (up
to 1,024 images and 256 KiB of pixels: 1,024 images of 1x8x8, 32 of 1x64x64; read through its footer: no page
ranges), the XXH3 checksum of every chunk, each image's pixel locator, the table digests and the manifest (its chunk footer records packed, as
writes record them now).
The images are those of ``plate_scale.py`` (image i is ``(arange(P) + 7 i) % 4096``), with its ``well`` and
``site`` columns (interleaved, or well by well with its ``--by-well``), so its children check what they read.

Usage: ``python benchmarks/plate_scale.py --synthetic --sizes 1000 100000 1000000 --shape 1 8 8``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np

PER_GROUP = 1024


def _template(shape: tuple[int, ...]) -> dict[str, object]:
    """The images-table row ``write_dataset`` writes for one uint16 image of ``shape`` (ZYX)."""
    import pyarrow.parquet as pq

    from ome_arrow_core import write_dataset

    with tempfile.TemporaryDirectory() as tmp:
        out = write_dataset([np.zeros(shape, np.uint16)], Path(tmp) / "one", dim_order="ZYX", progress=False)
        row: dict[str, object] = pq.read_table(out / "images.parquet").to_pylist()[0]
    return row


def _per_chunk_group(image_bytes: int) -> int:
    """Images a shared chunks row group holds, as ``write_dataset``'s packer shares them: up to 1,024 images and
    256 KiB of pixels (``packing.GROUP_IMAGES``, ``GROUP_BYTES``), never across an images-table row group."""
    from ome_arrow_core.typed_chunk.packing import GROUP_BYTES, GROUP_IMAGES, SMALL_IMAGE_BYTES

    if image_bytes > SMALL_IMAGE_BYTES:
        raise ValueError(f"images of {image_bytes} bytes are not packed many to a row group: use write_dataset")
    return max(1, min(GROUP_IMAGES, GROUP_BYTES // image_bytes))


def _chunk_rows(n: int, image_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(chunks row group, row in it) of each of ``n`` images of ``image_bytes`` each, as the packer writes them."""
    k = _per_chunk_group(image_bytes)
    i = np.arange(n, dtype=np.int64)
    block, j = i // PER_GROUP, i % PER_GROUP
    return block * -(-PER_GROUP // k) + j // k, j % k


def _chunk_groups(n: int, image_bytes: int) -> list[tuple[int, int]]:
    """(first image, end) of each chunks row group."""
    group_of = _chunk_rows(n, image_bytes)[0]
    cuts = [0, *(np.nonzero(np.diff(group_of))[0] + 1).tolist(), n]
    return list(itertools.pairwise(cuts))


def synthetic_plate(path: Path, n: int, shape: tuple[int, ...]) -> None:
    """Write the plate of ``n`` images of ``shape`` (ZYX uint16) at ``path`` (a new directory)."""
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    if str(Path(__file__).parent) not in sys.path:  # plate_scale.py, beside this file, says which well an image is in
        sys.path.insert(0, str(Path(__file__).parent))
    from plate_scale import by_well, well_site

    from ome_arrow_core.checksums import ALGORITHM, checksums_of
    from ome_arrow_core.safe_write import SENTINEL, SENTINEL_TEXT
    from ome_arrow_core.typed_chunk.aligned_index import write_aligned_index
    from ome_arrow_core.typed_chunk.chunk_footers import record_chunk_footers, set_footer_records
    from ome_arrow_core.typed_chunk.fragments import chunk_writer
    from ome_arrow_core.typed_chunk.group_sums import GROUPS_KEY, record_groups

    try:  # packed records (a tree without them, run as "before", records them as lists)
        from ome_arrow_core.typed_chunk.group_records import set_group_records
    except ImportError:
        set_group_records = None
    try:  # image records (a tree without them, run as "before", writes none)
        from ome_arrow_core.typed_chunk.image_records import RECORDS_KEY, record_images
    except ImportError:
        record_images = None
    from ome_arrow_core.typed_chunk.locators import LOCATOR_FIELDS, LOCATORS_KEY, value_offsets
    from ome_arrow_core.typed_chunk.spec import CHUNKS_SCHEMA, FILE_METADATA, IMAGES_SCHEMA, INDEX_SCHEMA, MANIFEST
    from ome_arrow_core.typed_chunk.table_sums import TABLES_KEY, record
    from ome_arrow_core.typed_chunk.tables import statistics_columns

    wells = [f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13)]
    path.mkdir(parents=True)
    size = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    ids = pa.array([f"image-{k:07d}" for k in range(n)], pa.string())
    i32 = pa.int32()

    def same(value: object, type_: pa.DataType, count: int = n) -> pa.Array:
        return pa.array([value], type_).take(pa.array(np.zeros(count, np.int64)))

    zyx = dict(zip("zyx", shape))
    sizes = {"t": 1, "c": 1, **zyx}
    base = np.arange(size, dtype=np.int64)[None, :]
    sums = np.empty(n, dtype=np.uint64)
    # chunks row group by chunks row group: only one group's pixels in memory (the whole plate's, as int64, took
    # 6.3 GiB at N = 100,000)
    with chunk_writer(path / "chunks.parquet", CHUNKS_SCHEMA.with_metadata(FILE_METADATA), None) as writer:
        for start, stop in _chunk_groups(n, size * 2):  # the writer's own settings (no statistics on the pixels)
            k = stop - start
            pixels = ((base + 7 * i[start:stop, None]) % 4096).astype("<u2")
            data = pixels.view(np.uint8).reshape(-1)
            offsets = np.arange(k + 1, dtype=np.int64) * size * 2
            sums[start:stop] = checksums_of(data, offsets)
            blobs = pa.LargeBinaryArray.from_buffers(
                pa.large_binary(), k, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
            )
            cols = [ids.slice(start, k), pa.array(i[start:stop])]
            cols += [same(0, i32, k) for _ in "tczyx"] + [same(int(sizes[a]), i32, k) for a in "tczyx"]
            chunks = pa.Table.from_arrays([*cols, same("uint16", pa.string(), k), blobs], schema=CHUNKS_SCHEMA)
            writer.write_table(chunks, row_group_size=k)
    coords = [same(0, i32) for _ in "tczyx"]
    shapes = [same(int(sizes[a]), i32) for a in "tczyx"]
    group_of, row_in = _chunk_rows(n, size * 2)
    index = pa.Table.from_arrays(
        [
            ids,
            pa.array(i),
            pa.array(group_of.astype(np.int32)),
            pa.array(row_in.astype(np.int32)),
            same("chunks.parquet", pa.string()),
            *coords,
            *shapes,
            pa.array(sums),
        ],
        schema=INDEX_SCHEMA,
    )
    write_aligned_index(index, ids.to_pylist(), PER_GROUP, path / "index.parquet")  # metadata only: ~100 B an image
    del index
    row = _template(shape)
    fixed = [f for f in IMAGES_SCHEMA if f.name not in ("image_id", "name")]
    # each image's pixel locator (where its pixel bytes lie in chunks.parquet), as write_dataset writes it
    offsets = value_offsets(path / "chunks.parquet", group_of, row_in, np.full(n, size * 2, dtype=np.int64))
    if (offsets < 0).any():
        raise RuntimeError("chunks.parquet's pixel pages could not be located")
    schema = IMAGES_SCHEMA
    for f in (*LOCATOR_FIELDS, pa.field("well", pa.string()), pa.field("site", pa.int64())):
        schema = schema.append(f)
    with pq.ParquetWriter(
        path / "images.parquet",
        schema.with_metadata(FILE_METADATA),
        write_page_checksum=True,
        write_statistics=statistics_columns(schema),  # as write_dataset: where filters and readers use them
    ) as images:
        for start in range(0, n, PER_GROUP):  # a row group at a time
            k = min(PER_GROUP, n - start)
            cols = [ids.slice(start, k), ids.slice(start, k), *(same(row[f.name], f.type, k) for f in fixed)]
            cols += [same("chunks.parquet", pa.string(), k), pa.array(offsets[start : start + k])]
            cols += [same(size * 2, pa.int64(), k), pa.array(sums[start : start + k])]
            well, site = well_site(i[start : start + k], n, by_well())
            cols.append(pa.array(np.array(wells)[well].tolist(), pa.string()))
            cols.append(pa.array(site))
            images.write_table(pa.Table.from_arrays(cols, schema=schema.with_metadata(FILE_METADATA)), k)
    (path / SENTINEL).write_text(SENTINEL_TEXT)
    manifest = {
        "type": "ome.arrow",
        "version": "0.1.0",
        "layout": "typed-chunk-dataset",
        "image_count": n,
        "chunk_count": n,
        "ome_arrow_core": {
            "format_version": 1,
            "checksum": ALGORITHM,
            "rows_per_group": PER_GROUP,
            "chunk_format": "parquet",
            "fragments": ["chunks.parquet"],
            TABLES_KEY: record(path, ["images.parquet", "index.parquet"]),
        },
    }
    groups = record_groups(path, manifest["ome_arrow_core"][TABLES_KEY])  # type: ignore[index]
    if set_group_records is None:
        manifest["ome_arrow_core"][GROUPS_KEY] = groups  # type: ignore[index]
    else:
        set_group_records(manifest["ome_arrow_core"], groups)  # type: ignore[arg-type]
    try:  # the images table's value index (a tree without it, run as "before", records none)
        from ome_arrow_core.typed_chunk.value_index import VALUES_KEY, record_values
    except ImportError:
        pass
    else:
        values = record_values(path, manifest["ome_arrow_core"][TABLES_KEY])  # type: ignore[index]
        if values:
            manifest["ome_arrow_core"][VALUES_KEY] = values  # type: ignore[index]
    set_footer_records(manifest["ome_arrow_core"], record_chunk_footers(path, ["chunks.parquet"]))  # type: ignore[arg-type]
    tables = manifest["ome_arrow_core"][TABLES_KEY]  # type: ignore[index]
    records = (
        None if record_images is None else record_images(path, ["images.parquet"], tables, None, contextlib.nullcontext)
    )
    if records:
        manifest["ome_arrow_core"][RECORDS_KEY] = records  # type: ignore[index]
    manifest["ome_arrow_core"][LOCATORS_KEY] = {"chunks.parquet": {"size": (path / "chunks.parquet").stat().st_size}}  # type: ignore[index]
    try:  # the row-group lists in a sidecar (a tree without it, run as "before", keeps them in the manifest)
        from ome_arrow_core.typed_chunk.group_lists import split_lists
    except ImportError:
        pass
    else:
        split_lists(manifest["ome_arrow_core"], lambda name, blob: (path / name).write_bytes(blob))  # type: ignore[arg-type]
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))
