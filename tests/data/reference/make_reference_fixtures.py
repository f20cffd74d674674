"""Generate reference fixtures with the upstream ``ome-arrow==0.1.0`` package.

This script is NOT part of the test suite and is not imported by it.  It needs
an environment with ``ome-arrow==0.1.0`` installed (it is deliberately kept out
of this project's dependencies), e.g.::

    python3.11 -m venv /tmp/omeref/venv
    /tmp/omeref/venv/bin/pip install ome-arrow==0.1.0
    /tmp/omeref/venv/bin/python tests/data/reference/make_reference_fixtures.py

It writes one fixture per storage layout that ome-arrow 0.1.0 can produce into
this directory and (re)writes ``expected.json``, which lets our tests rebuild
the expected pixel arrays with NumPy alone (see ``expected_pixels`` below; the
same formula is spelled out in ``expected.json``).  After writing, every
fixture is read back with ome-arrow's own reader and compared to the expected
array, so a fixture that ome-arrow cannot read never gets recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import ome_arrow
import pyarrow as pa
import pyarrow.parquet as pq
from ome_arrow import (
    OMEArrow,
    OMEArrowDataset,
    from_numpy,
    from_ome_parquet,
    to_numpy,
    to_ome_arrow,
    to_ome_parquet,
    write_ome_arrow_dataset,
)

HERE = Path(__file__).resolve().parent
SHAPE = (1, 2, 3, 32, 48)  # T, C, Z, Y, X
ACQ = dt.datetime(2024, 1, 2, 3, 4, 5)  # fixed so the files are reproducible
GENERATOR = (
    "a = ((np.arange(T*C*Z*Y*X, dtype=np.int64) * 7 + offset) % 65521)"
    ".astype(np.uint16).reshape(T, C, Z, Y, X); "
    "for dtype float32 the array is a.astype(np.float32) / 4"
)


def expected_pixels(
    shape: tuple[int, int, int, int, int] = SHAPE,
    offset: int = 0,
    dtype: str = "uint16",
) -> np.ndarray:
    """Return the deterministic TCZYX test image (see GENERATOR)."""
    n = int(np.prod(shape))
    a = ((np.arange(n, dtype=np.int64) * 7 + offset) % 65521).astype(np.uint16)
    a = a.reshape(shape)
    if dtype == "uint16":
        return a
    if dtype == "float32":
        return a.astype(np.float32) / np.float32(4)
    raise ValueError(dtype)


def sha256(arr: np.ndarray) -> str:
    """Checksum of the C-order little-endian bytes of ``arr``."""
    le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return hashlib.sha256(np.ascontiguousarray(le).tobytes()).hexdigest()


def rec(arr: np.ndarray, **kw) -> pa.StructScalar:
    """from_numpy with fixed identity/time so output bytes are reproducible."""
    kw.setdefault("image_id", "ref-image")
    kw.setdefault("name", "reference image")
    return from_numpy(arr, dim_order="TCZYX", acquisition_datetime=ACQ, **kw)


def clean(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def main() -> None:
    assert ome_arrow.__version__ == "0.1.0", ome_arrow.__version__
    u16 = expected_pixels()
    f32 = expected_pixels(dtype="float32")
    fixtures: list[dict] = []

    def add(name: str, kind: str, layout: str, written_with: str, **extra) -> None:
        entry = {
            "path": name,
            "kind": kind,
            "layout": layout,
            "written_with": written_with,
        }
        entry.update(extra)
        entry.setdefault("images", [{"row_index": 0, "offset": 0}])
        entry.setdefault("dtype", "uint16")
        entry["shape_tczyx"] = list(SHAPE)
        entry["sizes"] = dict(zip("TCZYX", SHAPE))
        for img in entry["images"]:
            img["sha256"] = sha256(expected_pixels(offset=img["offset"], dtype=entry["dtype"]))
        fixtures.append(entry)

    # ---- single-row Parquet files (one struct column, one row) ------------
    # 1) ome-arrow defaults: from_numpy builds BOTH planes and list<uint16>
    #    chunks (chunk_shape default (1, 512, 512) clipped to the image, i.e.
    #    one chunk per plane here); to_ome_parquet default column is "image".
    p = HERE / "oa010_planes_and_chunks_default.parquet"
    clean(p)
    to_ome_parquet(rec(u16), str(p))
    add(
        p.name,
        "single_row_parquet",
        "OME_ARROW_STRUCT; planes list<uint16> + chunks list<uint16> (1,32,48)",
        "to_ome_parquet(from_numpy(a, dim_order='TCZYX'), path)",
        column="image",
    )

    # 2) planes only (no chunk_grid / chunks -> both null)
    p = HERE / "oa010_planes_only.parquet"
    clean(p)
    to_ome_parquet(rec(u16, build_chunks=False), str(p), column_name="ome_arrow")
    add(
        p.name,
        "single_row_parquet",
        "OME_ARROW_STRUCT; planes only, chunk_grid=null, chunks=null",
        "to_ome_parquet(from_numpy(a, build_chunks=False), path, column_name='ome_arrow')",
        column="ome_arrow",
    )

    # 3) planes + ragged list<uint16> chunks (2,20,20) -> edge chunks clipped
    p = HERE / "oa010_planes_and_chunks_ragged.parquet"
    clean(p)
    to_ome_parquet(rec(u16, chunk_shape=(2, 20, 20)), str(p), column_name="ome_arrow")
    add(
        p.name,
        "single_row_parquet",
        "OME_ARROW_STRUCT; planes + chunks list<uint16>, chunk_shape ZYX=(2,20,20) with clipped edge chunks",
        "to_ome_parquet(from_numpy(a, chunk_shape=(2,20,20)), path, column_name='ome_arrow')",
        column="ome_arrow",
    )

    # 4) list<uint16> chunks only (planes = []), via public to_ome_arrow API
    base = rec(u16, chunk_shape=(2, 20, 20)).as_py()
    pm = base["pixels_meta"]
    chunks_only = to_ome_arrow(
        image_id=base["id"],
        name=base["name"],
        image_type=None,
        acquisition_datetime=ACQ,
        dimension_order=pm["dimension_order"],
        dtype=pm["type"],
        size_x=pm["size_x"],
        size_y=pm["size_y"],
        size_z=pm["size_z"],
        size_c=pm["size_c"],
        size_t=pm["size_t"],
        channels=pm["channels"],
        planes=[],
        chunks=base["chunks"],
        chunk_shape=(2, 20, 20),
    )
    p = HERE / "oa010_list_chunks_only.parquet"
    clean(p)
    to_ome_parquet(chunks_only, str(p), column_name="ome_arrow")
    add(
        p.name,
        "single_row_parquet",
        "OME_ARROW_STRUCT; planes=[] and chunks list<uint16> (2,20,20) ragged",
        "to_ome_parquet(to_ome_arrow(..., planes=[], chunks=<list chunks>), path, column_name='ome_arrow')",
        column="ome_arrow",
    )

    # 5-7) typed byte chunks (OME_ARROW_BYTE_STRUCT), planes = []
    for suffix, comp in (("raw", None), ("zstd", "zstd"), ("lz4", "lz4")):
        p = HERE / f"oa010_byte_chunks_{suffix}.parquet"
        clean(p)
        to_ome_parquet(
            rec(
                u16,
                chunk_shape=(2, 20, 20),
                chunk_encoding="bytes",
                chunk_compression=comp,
            ),
            str(p),
            column_name="ome_arrow",
        )
        add(
            p.name,
            "single_row_parquet",
            "OME_ARROW_BYTE_STRUCT; planes=[], chunks[].pixel_bytes large_binary "
            f"(little-endian uint16, C order ZYX), chunk compression={comp!r}, "
            "chunk_shape ZYX=(2,20,20)",
            "to_ome_parquet(from_numpy(a, chunk_shape=(2,20,20), "
            f"chunk_encoding='bytes', chunk_compression={comp!r}), path, "
            "column_name='ome_arrow')",
            column="ome_arrow",
            chunk_compression=comp,
        )

    # 8) byte chunks via write-time conversion of a numeric record
    p = HERE / "oa010_byte_chunks_converted.parquet"
    clean(p)
    to_ome_parquet(
        rec(u16),
        str(p),
        column_name="ome_arrow",
        inline_chunk_encoding="bytes",
    )
    add(
        p.name,
        "single_row_parquet",
        "OME_ARROW_BYTE_STRUCT (converted at write time from list chunks (1,32,48)); planes=[]",
        "to_ome_parquet(from_numpy(a), path, column_name='ome_arrow', inline_chunk_encoding='bytes')",
        column="ome_arrow",
    )

    # 9) non-uint16 byte chunks (float32 preserved, clamp_to_uint16=False)
    p = HERE / "oa010_byte_chunks_float32.parquet"
    clean(p)
    to_ome_parquet(
        rec(
            f32,
            clamp_to_uint16=False,
            chunk_shape=(2, 20, 20),
            chunk_encoding="bytes",
        ),
        str(p),
        column_name="ome_arrow",
    )
    add(
        p.name,
        "single_row_parquet",
        "OME_ARROW_BYTE_STRUCT; pixels_meta.type='float32', chunks[].dtype="
        "'float32', little-endian float32 pixel_bytes",
        "to_ome_parquet(from_numpy(a_f32, clamp_to_uint16=False, "
        "chunk_shape=(2,20,20), chunk_encoding='bytes'), path, "
        "column_name='ome_arrow')",
        column="ome_arrow",
        dtype="float32",
    )

    # 10) CytoDataFrame-style table: extra columns + 2 rows of the struct
    r0 = rec(u16, build_chunks=False)
    r1 = rec(expected_pixels(offset=1), build_chunks=False, image_id="ref-image-1")
    table = pa.table(
        {
            "Metadata_Site": pa.array([0, 1], type=pa.int64()),
            "feature_1": pa.array([0.5, 1.5], type=pa.float64()),
            "image": pa.array([r0.as_py(), r1.as_py()], type=ome_arrow.OME_ARROW_STRUCT),
        }
    )
    p = HERE / "oa010_table_two_rows.parquet"
    clean(p)
    pq.write_table(table, p)
    add(
        p.name,
        "multi_row_table",
        "plain pq.write_table of a 2-row table (int64, double, OME_ARROW_STRUCT "
        "column 'image' with planes only); no ome.arrow key-value metadata",
        "pq.write_table(pa.table({'Metadata_Site', 'feature_1', 'image': "
        "pa.array([rec0, rec1], type=OME_ARROW_STRUCT)}), path)",
        column="image",
        images=[{"row_index": 0, "offset": 0}, {"row_index": 1, "offset": 1}],
    )

    # ---- typed chunk dataset directories ----------------------------------
    # 11) write_ome_arrow_dataset defaults (layout auto/balanced -> "block")
    p = HERE / "oa010_dataset_default.ome-arrow"
    clean(p)
    ch = write_ome_arrow_dataset([u16], p)
    add(
        p.name,
        "dataset_dir",
        f"typed-chunk-dataset, layout={ch.layout!r}, chunk_shape TCZYX="
        f"{list(ch.chunk_shape)}, parquet compression zstd, 1 chunk/row group, "
        "index.parquet present",
        "write_ome_arrow_dataset([a], path)",
        images=[{"image_id": "image-00000", "offset": 0}],
    )

    # 12) OMEArrow.export(how='parquet') -> dataset dir even with .parquet name
    p = HERE / "oa010_export_parquet.ome.parquet"
    clean(p)
    OMEArrow(rec(u16)).export(how="parquet", out=str(p))
    add(
        p.name,
        "dataset_dir",
        "typed-chunk-dataset written by OMEArrow.export(how='parquet'); the "
        "'.ome.parquet' path is a DIRECTORY; image_id taken from record id",
        "OMEArrow(from_numpy(a, image_id='ref-image')).export(how='parquet', out=path)",
        images=[{"image_id": "ref-image", "offset": 0}],
    )

    # 13) 2 images, ragged tiles, 4 chunk rows per row group, no compression
    p = HERE / "oa010_dataset_tiles_two_images.ome-arrow"
    clean(p)
    write_ome_arrow_dataset(
        [u16, expected_pixels(offset=1)],
        p,
        layout="tile",
        chunk_shape=(1, 1, 2, 20, 20),
        compression=None,
        chunk_rows_per_row_group=4,
    )
    add(
        p.name,
        "dataset_dir",
        "typed-chunk-dataset, 2 images, layout 'tile', chunk_shape TCZYX="
        "[1,1,2,20,20] (ragged edges), compression None, 4 chunk rows per row "
        "group, chunk_id global across images",
        "write_ome_arrow_dataset([a, a_offset1], path, layout='tile', "
        "chunk_shape=(1,1,2,20,20), compression=None, chunk_rows_per_row_group=4)",
        images=[
            {"image_id": "image-00000", "offset": 0},
            {"image_id": "image-00001", "offset": 1},
        ],
    )

    # 14) no physical index (index.parquet absent), float32 preserved
    p = HERE / "oa010_dataset_noindex_float32.ome-arrow"
    clean(p)
    write_ome_arrow_dataset(
        [f32],
        p,
        layout="z-plane",
        build_physical_index=False,
    )
    add(
        p.name,
        "dataset_dir",
        "typed-chunk-dataset, float32 pixels, layout 'z-plane' (chunk TCZYX "
        "[1,1,1,32,48]), build_physical_index=False (no index.parquet)",
        "write_ome_arrow_dataset([a_f32], path, layout='z-plane', build_physical_index=False)",
        dtype="float32",
        images=[{"image_id": "image-00000", "offset": 0}],
    )

    # ---- verify every fixture with ome-arrow's own readers ----------------
    for fx in fixtures:
        path = HERE / fx["path"]
        for img in fx["images"]:
            want = expected_pixels(offset=img["offset"], dtype=fx["dtype"])
            if fx["kind"] == "dataset_dir":
                got = OMEArrowDataset(path).read_image(img["image_id"])
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    scalar = from_ome_parquet(path, column_name=fx["column"], row_index=img["row_index"])
                got = to_numpy(scalar, dtype=np.dtype(fx["dtype"]))
            assert got.dtype == want.dtype, (fx["path"], got.dtype)
            assert got.shape == want.shape, (fx["path"], got.shape)
            assert np.array_equal(got, want), fx["path"]
        # whole-file convenience API (first image) as well
        got = OMEArrow(str(path), column_name=fx.get("column", "ome_arrow")).export(
            how="numpy", dtype=np.dtype(fx["dtype"])
        )
        assert np.array_equal(got, expected_pixels(dtype=fx["dtype"])), fx["path"]
        fx["verified_with_ome_arrow_0_1_0"] = True

    total = sum(f.stat().st_size for f in HERE.rglob("*") if f.is_file())
    doc = {
        "generated_by": "make_reference_fixtures.py with ome-arrow "
        f"{ome_arrow.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}",
        "axis_order": "TCZYX",
        "generator": GENERATOR,
        "generator_note": "offset is per image (0 unless stated); sha256 is over "
        "the C-order little-endian bytes of the expected array",
        "acquisition_datetime": ACQ.isoformat(),
        "fixtures": fixtures,
    }
    (HERE / "expected.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {len(fixtures)} fixtures, {total} bytes under {HERE}")


if __name__ == "__main__":
    main()
