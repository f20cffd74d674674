"""Corruption cases' metadata lies: how each "lie" case edits a member so that it claims what the case says.

A lie keeps the file well formed (and, where the format records a digest, records the new one), so that the
mutant reaches the reader's checks of what the metadata says. corruption_cases.py lists the lies of each kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corruption_vortex import VORTEX_RECORD_KINDS, edit_record, lie_vortex_record

if TYPE_CHECKING:
    from corruption_cases import Case

__all__ = ["lie"]


def _rewrite_parquet(
    file: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], rows: int | None = None
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(file)
    data = edit(table.to_pylist())
    new = pa.Table.from_pylist(data, schema=table.schema)
    pq.write_table(new, file)
    _rerecord(file)


def _rerecord(file: Path) -> None:
    """Record ``file``'s new digest in its dataset's manifest (if it records one): the lie is then consistent,
    as a tool rewriting a table and the manifest would leave it, and reaches the deeper checks."""
    import json

    from ome_arrow_core.typed_chunk.table_sums import file_digest

    manifest_file = file.parent / "_ome_arrow_dataset.json"
    if not manifest_file.is_file():
        return
    manifest = json.loads(manifest_file.read_text())
    tables = (manifest.get("ome_arrow_core") or {}).get("tables") or {}
    if file.name in tables:
        tables[file.name] = [file_digest(file)]
        manifest_file.write_text(json.dumps(manifest, indent=2))


def _lie_groups(root: Path, file: Path, arg: str) -> None:
    """Edit the row-group lists' sidecar ``file`` (or what the manifest says of it), then record its new size and
    digest in the manifest: a lie the manifest vouches for."""
    import xxhash

    from ome_arrow_core.typed_chunk.packed_ints import pack_ints, unpack_ints

    manifest_file = root / "_ome_arrow_dataset.json"
    doc = json.loads(manifest_file.read_text())
    side = doc["ome_arrow_core"]["group_lists"]
    lists = json.loads(file.read_text())
    images = lists["table_groups_packed"]["images.parquet"]
    if arg == "groups=rows+1":
        images["rows"] += 1
    elif arg == "groups=bounds":  # row group 1 begins a byte later
        bounds = unpack_ints(images["bounds"], images["groups"] + 1)
        bounds[1] += 1
        images["bounds"] = pack_ints(bounds)
    elif arg == "groups=drop_table":
        del lists["table_groups_packed"]["index.parquet"]
    elif arg == "groups=tables_rows+1":  # what scan counts by, and the sidecar, agree on one more image
        images["rows"] += 1
        side["tables"]["images.parquet"]["rows"] += 1
        doc["image_count"] += 1
    blob = json.dumps(lists).encode()
    file.write_bytes(blob)
    side.update(size=len(blob), digest=xxhash.xxh3_64_hexdigest(blob))
    manifest_file.write_text(json.dumps(doc))


def lie(case: Case, root: Path, file: Path) -> None:
    """Edit the metadata of ``file`` so that it claims what case.arg says."""
    arg = case.arg
    if case.role == "groups":
        _lie_groups(root, file, arg)
        return
    if case.kind.startswith("ds_") and case.role == "manifest":
        doc = json.loads(file.read_text())
        ours = doc.setdefault("ome_arrow_core", {})
        if arg == "image_count+1":
            doc["image_count"] = int(doc.get("image_count", 0)) + 1
        elif arg == "format_version=99":
            ours["format_version"] = 99
        elif arg == "appends=missing":
            ours["appends"] = [
                *ours.get("appends", []),
                {"images": "images-00009.parquet", "index": "index-00009.parquet"},
            ]
        elif arg == "appends=../x":
            ours["appends"] = [{"images": "../images.parquet", "index": "../index.parquet"}]
        elif arg == "appends=bad":
            ours["appends"] = [17]
        elif arg == "appends=[]":
            ours["appends"] = []
        elif arg == "json=list":
            doc = [doc]  # type: ignore[assignment]
        if arg == "non_utf8":
            file.write_bytes(b'{"name": "\xff\xfe"}')
        else:
            file.write_text(json.dumps(doc))
        return
    if case.kind.startswith("ds_") and case.role == "images":

        def edit_images(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            r = rows[0]
            if arg == "size_x+1":
                r["size_x"] += 1
            elif arg == "size_x-1":
                r["size_x"] -= 1
            elif arg == "size_z*2":
                r["size_z"] *= 2
            elif arg == "size_yx=60000":
                r["size_y"] = r["size_x"] = 60000
            elif arg.startswith("dtype="):
                r["dtype"] = arg.split("=")[1]
            elif arg == "image_id=dup" and len(rows) > 1:
                r["image_id"] = rows[1]["image_id"]
            elif arg == "image_id=dup":
                r["image_id"] = "image-00000"
            elif arg == "image_id=zzz":
                r["image_id"] = "zzz"
            elif arg == "channels_json=junk":
                r["channels_json"] = "{[not json"
            elif arg == "size_c=0":
                r["size_c"] = 0
            elif arg == "size_t=-1":
                r["size_t"] = -1
            elif arg == "chunk_y=0":
                r["chunk_y"] = 0
            return rows

        _rewrite_parquet(file, edit_images)
        return
    if case.kind.startswith("ds_") and case.role == "index":

        def edit_index(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            if arg == "shape_x+1":
                rows[0]["shape_x"] += 1
            elif arg == "x=0":
                k = next(i for i, r in enumerate(rows) if r["x"] > 0)
                rows[k]["x"] = 0
            elif arg == "drop_row":
                rows = rows[1:]
            elif arg == "dup_row":
                rows = [rows[0], *rows]
            elif arg == "swap_rig":
                a, b = (
                    rows[0],
                    next(r for r in rows[1:] if r["row_group_id"] == rows[0]["row_group_id"])
                    if any(r["row_group_id"] == rows[0]["row_group_id"] for r in rows[1:])
                    else rows[1],
                )
                for key in ("row_group_id", "row_index_in_group"):
                    a[key], b[key] = b[key], a[key]
            elif arg == "row_group_id+1000":
                rows[0]["row_group_id"] += 1000
            elif arg == "chunk_id=dup":
                rows[1]["chunk_id"] = rows[0]["chunk_id"]
            elif arg.startswith("fragment_path="):
                value = arg.split("=", 1)[1]
                rows[0]["fragment_path"] = "chunks-00007.parquet" if value == "other" else value
            elif arg == "rows=1000000":
                rows = rows * (1000000 // len(rows))
            elif arg == "row_index_in_group=-1":
                rows[0]["row_index_in_group"] = -1
            elif arg.startswith(("page_offset", "page_size")):  # the second chunk's page, inside a batch's run
                key = "page_offset" if arg.startswith("page_offset") else "page_compressed_size"
                rows[1][key] += int(arg.removeprefix("page_offset").removeprefix("page_size"))
            return rows

        _rewrite_parquet(file, edit_index)
        return
    if case.kind == "record":

        def edited(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            edit_record(rows[0]["ome_arrow"], arg)
            return rows

        _rewrite_parquet(file, edited)
        return
    if case.kind in VORTEX_RECORD_KINDS:
        lie_vortex_record(case.kind, file, arg)
        return
    if case.kind == "vortex":
        _lie_vortex(file, arg)
        return
    if case.kind.startswith("zarr_"):
        _lie_zarr(file, arg)
        return
    _lie_tiff(file, arg)


def _lie_ome_xml(file: Path, arg: str) -> None:
    """Edit a bioformats2raw store's ``OME/METADATA.ome.xml``, and its checksum in the root's attributes (a
    consistent lie, as a tool rewriting both would leave it: it reaches the checks of what the document says)."""
    xml = file.read_text(encoding="utf-8")
    if arg == "xml=junk":
        xml = xml[: len(xml) // 2]
    elif arg == "no_image":
        xml = re.sub(r"<Image .*</Image>", "", xml, flags=re.S)
    elif arg == "SizeX+1":
        xml = re.sub(r'SizeX="(\d+)"', lambda m: f'SizeX="{int(m.group(1)) + 1}"', xml)
    else:
        key, value = arg.split("=")
        xml = re.sub(rf'{key}="[^"]*"', f'{key}="{value}"', xml)
    file.write_text(xml, encoding="utf-8")
    root = file.parent.parent / "zarr.json"
    doc = json.loads(root.read_text())
    entry = doc["attributes"].get("ome_arrow", {}).get("ome_xml")
    if isinstance(entry, dict):
        from ome_arrow_zarr.integrity import digest

        entry["digest"] = f"{digest(xml.encode('utf-8')):016x}"
        root.write_text(json.dumps(doc))


def _lie_zarr(file: Path, arg: str) -> None:
    """Edit an OME-Zarr group's NGFF metadata (zarr.json / .zattrs) or a level array's (zarr.json / .zarray)."""
    if file.name == "METADATA.ome.xml":
        _lie_ome_xml(file, arg)
        return
    if arg == "json=junk":
        file.write_text(file.read_text()[:-9])
        return
    doc = json.loads(file.read_text())
    attrs = doc.get("attributes", doc)
    ngff = attrs.get("ome", attrs)
    if "bioformats2raw.layout" in ngff or "series" in ngff:  # a bioformats2raw root or its OME group
        if arg == "layout_drop":
            ngff.pop("bioformats2raw.layout")
        elif arg == "ome_xml_sum=0":
            attrs["ome_arrow"]["ome_xml"]["digest"] = "0" * 16
        elif arg == "series=nowhere":
            ngff["series"] = ["nowhere"]
        elif arg == "series=none":
            ngff["series"] = []
    elif "multiscales" in ngff:
        ms = ngff["multiscales"][0]
        if arg == "axes_swap_yx":
            ms["axes"][-2], ms["axes"][-1] = ms["axes"][-1], ms["axes"][-2]
        elif arg == "axes_drop":
            ms["axes"] = ms["axes"][1:]
        elif arg == "scale_neg":
            ms["datasets"][0]["coordinateTransformations"][0]["scale"][-1] = -1
        elif arg == "path_nowhere":
            ms["datasets"][0]["path"] = "nowhere"
        elif arg == "levels_dup":  # a second level pointing at level 0's array: level shapes do not shrink
            ms["datasets"].append(dict(ms["datasets"][0]))
        elif arg == "version=9.9":
            (ngff if "ome" in attrs else ms)["version"] = "9.9"
    else:
        v3 = "data_type" in doc
        if arg == "shape_x+8":
            doc["shape"][-1] += 8
        elif arg == "shape_x-4":
            doc["shape"][-1] -= 4
        elif arg == "dtype=int16":
            doc["data_type" if v3 else "dtype"] = "int16" if v3 else "<i2"
        elif arg == "chunks_x=4":
            if v3:
                doc["chunk_grid"]["configuration"]["chunk_shape"][-1] = 4
            else:
                doc["chunks"][-1] = 4
        elif arg == "codec=bogus":
            if v3:
                doc["codecs"][-1]["name"] = "no-such-codec"
            else:
                doc["compressor"] = {"id": "no-such-codec"}
    file.write_text(json.dumps(doc))


def _lie_vortex(file: Path, arg: str) -> None:
    import pyarrow as pa
    import vortex as vx

    table = vx.open(str(file)).to_arrow().read_all()
    doc = json.loads(table.column("meta")[0].as_py())
    sizes = doc["image"]["sizes"]
    if arg == "size_x+1":
        sizes["X"] += 1
    elif arg == "size_z*2":
        sizes["Z"] *= 2
    elif arg == "size_yx=60000":
        sizes["X"] = sizes["Y"] = 60000
    elif arg.startswith("dtype="):
        doc["image"]["dtype"] = arg.split("=")[1]
    elif arg == "chunk=0":
        doc["chunk_shape"] = [0, 8]
    metas = [json.dumps(doc)] + [None] * (table.num_rows - 1)
    i = table.schema.get_field_index("meta")
    table = table.set_column(i, "meta", pa.array(metas, pa.string()))
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.large_binary()}
    table = table.cast(pa.schema([f.with_type(plain.get(f.type, f.type)) for f in table.schema]))
    file.unlink()
    vx.io.write(table, str(file))


def _lie_tiff(file: Path, arg: str) -> None:
    import tifffile

    with tifffile.TiffFile(file) as tif:
        xml = tif.pages[0].description
    if arg == "xml=junk":
        xml = xml[: len(xml) // 2]
    elif arg == "no_tiffdata":
        xml = re.sub(r"<TiffData[^>]*/>", "", xml)
    elif arg == "IFD=99":
        xml = re.sub(r'IFD="\d+"', 'IFD="99"', xml, count=1)
    elif arg == "PlaneCount=1":
        xml = re.sub(r'PlaneCount="\d+"', 'PlaneCount="1"', xml)
    elif arg == "SizeX+1":
        xml = re.sub(r'SizeX="(\d+)"', lambda m: f'SizeX="{int(m.group(1)) + 1}"', xml)
    elif arg == "sum=0":
        xml = re.sub(r'(<M K="level 0 plane 0">)[^<]*', r"\g<1>0000000000000000", xml)
    elif arg == "sum=swap":  # the checksums of planes 0 and 1 exchanged
        sums = re.findall(r'<M K="level 0 plane [01]">([^<]*)</M>', xml)
        if len(sums) == 2:
            xml = xml.replace(sums[0], "@").replace(sums[1], sums[0]).replace("@", sums[1])
    elif arg == "annotation=none":
        xml = re.sub(r"<StructuredAnnotations>.*</StructuredAnnotations>", "", xml)
    else:
        key, value = arg.split("=")
        xml = re.sub(rf'{key}="[^"]*"', f'{key}="{value}"', xml)
    tifffile.tiffcomment(file, xml.encode())
