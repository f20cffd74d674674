"""Corruption cases: the storage kinds, the mutation classes and how each mutant is made.

A case is (kind, mutation class, member, variant); everything random is seeded by the case's id,
so a run is reproducible. See corruption_harness.py for how cases are read back and judged.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEED = 20260101

#: Storage kinds and their members (file names relative to the sample; "" is the file itself).
#: The value index of images.parquet (its name holds a digest of its content: a pattern, see :func:`member_path`).
VALUES_MEMBER = "_ome_arrow_values.images.*.bin"
#: The row-group lists' sidecar of a plate of many row groups (ome_arrow_core.typed_chunk.group_lists; a pattern too).
GROUPS_MEMBER = "_ome_arrow_groups.*.json"
KINDS: dict[str, tuple[str, ...]] = {
    "ds_lz4": (
        "_ome_arrow_dataset.json",
        "images.parquet",
        "index.parquet",
        "chunks.parquet",
        VALUES_MEMBER,
    ),
    # one-chunk images, uncompressed: pixel locators, image records and a value index
    "ds_records": (
        "_ome_arrow_dataset.json",
        "images.parquet",
        "index.parquet",
        "chunks.parquet",
        "images.records",
        VALUES_MEMBER,
    ),
    # one-chunk images, one an images row group: their row-group lists in a sidecar (and image records)
    "ds_groups": (
        "_ome_arrow_dataset.json",
        "images.parquet",
        "index.parquet",
        "chunks.parquet",
        "images.records",
        GROUPS_MEMBER,
    ),
    "ds_none": ("_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.parquet"),
    # a chunk per image plane, uncompressed, pages of 18 KiB: batches read whole chunks straight (whole_batches)
    "ds_planes": ("_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.parquet"),
    "ds_vortex": ("_ome_arrow_dataset.json", "images.parquet", "index.parquet", "chunks.vortex"),
    "ds_append": (
        "_ome_arrow_dataset.json",
        "images.parquet",
        "index.parquet",
        "chunks.parquet",
        "images-00001.parquet",
        "index-00001.parquet",
        "chunks-00001.parquet",
    ),
    "record": ("",),
    "vortex": ("",),
    "tiff_ours": ("",),
    "tiff_tifffile": ("",),
    # OME-Zarr: ours (v3 zstd with checksums; v2 uncompressed), and one zarr-python writes (no checksums)
    "zarr_ours": ("zarr.json", "0/zarr.json", "0/c/0/0/0/0/0", "0/c/0/1/1/1/1"),
    "zarr_v2raw": (".zattrs", ".zgroup", "0/.zarray", "0/.zattrs", "0/0/0/0/0/0", "0/0/1/1/1/1"),
    "zarr_foreign": ("zarr.json", "0/zarr.json", "0/c/0/0/0/0"),
    # ours, of an image read from an OME-TIFF: the bioformats2raw layout with OME/METADATA.ome.xml
    "zarr_omexml": (
        "zarr.json",
        "OME/zarr.json",
        "OME/METADATA.ome.xml",
        "0/zarr.json",
        "0/0/zarr.json",
        "0/0/c/0/0/0/0/0",
    ),
}
#: Members of stores without checksums whose random byte changes go undetected by the format (a zstd frame
#: without content checksum may decode to other pixels): not mutated randomly; docs/ome-zarr.md says so.
NO_RANDOM_BYTES = frozenset({("zarr_foreign", "0/c/0/0/0/0")})
SUFFIX = {
    "ds_lz4": ".ome.parquet",
    "ds_none": ".ome.parquet",
    "ds_planes": ".ome.parquet",
    "ds_records": ".ome.parquet",
    "ds_groups": ".ome.parquet",
    "ds_vortex": ".ome.parquet",
    "ds_append": ".ome.parquet",
    "record": ".parquet",
    "vortex": ".vortex",
    "tiff_ours": ".ome.tiff",
    "tiff_tifffile": ".ome.tif",
    "zarr_ours": ".ome.zarr",
    "zarr_v2raw": ".ome.zarr",
    "zarr_foreign": ".ome.zarr",
    "zarr_omexml": ".ome.zarr",
}
BYTE_CLASSES = ("truncate", "bitflip", "byteset", "zero")
#: Random variants per (kind, member, byte mutation class) in the default run (truncate adds fixed offsets).
DEFAULT_VARIANTS = {"truncate": 1, "bitflip": 3, "byteset": 1, "zero": 2}


def role(member: str) -> str:
    """What a member is: manifest, images, index, chunks, or file (a single-file kind)."""
    if not member:
        return "file"
    if "/" in member or member.startswith(".z"):  # an OME-Zarr store's member
        return "zmeta" if member.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zattrs", ".zgroup") else "zchunk"
    if member == "zarr.json":
        return "zmeta"
    if member == GROUPS_MEMBER:  # (a .json file, not the manifest)
        return "groups"
    if member.endswith(".json"):
        return "manifest"
    if member == VALUES_MEMBER:
        return "values"
    if member.endswith(".records"):
        return "records"
    return member.split(".")[0].split("-")[0]


# -- cases ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One mutant: sample ``kind``, mutation class ``cls`` of ``member``, variant ``arg``."""

    kind: str
    cls: str
    member: str
    arg: str

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.cls}/{self.member or 'file'}/{self.arg}"

    @property
    def role(self) -> str:
        return role(self.member)


def _lies(kind: str) -> dict[str, tuple[str, ...]]:
    """The metadata lies of ``kind``, by member."""
    if kind.startswith("ds_"):
        images = (
            "size_x+1",
            "size_x-1",
            "size_z*2",
            "size_yx=60000",
            "dtype=uint8",
            "dtype=int16",
            "dtype=float32",
            "dtype=bogus",
            "image_id=dup",
            "image_id=zzz",
            "channels_json=junk",
            "size_c=0",
            "size_t=-1",
            "chunk_y=0",
        )
        index = (
            "shape_x+1",
            "x=0",
            "drop_row",
            "dup_row",
            "swap_rig",
            "row_group_id+1000",
            "chunk_id=dup",
            "fragment_path=../x",
            "fragment_path=/etc/passwd",
            "fragment_path=other",
            "rows=1000000",
            "row_index_in_group=-1",
        )
        manifest = (
            "image_count+1",
            "format_version=99",
            "appends=missing",
            "appends=../x",
            "json=list",
            "appends=bad",
            "non_utf8",
            "appends=[]",
        )
        out = {"images.parquet": images, "index.parquet": index, "_ome_arrow_dataset.json": manifest}
        if kind == "ds_records":  # every image one chunk at the origin: no chunk to move to x = 0
            out["index.parquet"] = tuple(lie for lie in index if lie != "x=0")
        if kind == "ds_groups":  # a plate of 40 images: fewer lies on its tables, and lies its sidecar vouches for
            out["images.parquet"] = ("size_x+1", "dtype=int16", "image_id=dup")
            out["index.parquet"] = ("drop_row", "swap_rig", "row_group_id+1000")
            out[GROUPS_MEMBER] = ("groups=rows+1", "groups=bounds", "groups=drop_table", "groups=tables_rows+1")
        if kind == "ds_planes":  # every chunk a whole plane (x = 0); the pages' places in the index lie too
            pages = ("page_offset+2", "page_offset-8", "page_size+1", "page_size-2")
            out["index.parquet"] = (*(lie for lie in index if lie != "x=0"), *pages)
        if kind == "ds_append":
            out["images-00001.parquet"] = ("size_x+1", "dtype=int16", "image_id=dup")
            out["index-00001.parquet"] = ("x=0", "drop_row", "fragment_path=../x")
        return out
    if kind == "record":
        return {
            "": (
                "size_x+1",
                "size_z*2",
                "size_yx=60000",
                "type=int16",
                "type=bogus",
                "dup_plane",
                "plane_z=5",
                "drop_plane",
                "size_c=0",
            )
        }
    if kind == "vortex":
        return {"": ("size_x+1", "size_z*2", "size_yx=60000", "dtype=int16", "dtype=bogus", "chunk=0")}
    if kind == "zarr_omexml":
        return {
            "zarr.json": ("layout_drop", "ome_xml_sum=0", "json=junk"),
            "OME/zarr.json": ("series=nowhere", "series=none"),
            "OME/METADATA.ome.xml": ("SizeC=4", "SizeX+1", "Type=int16", "SamplesPerPixel=2", "xml=junk", "no_image"),
            "0/zarr.json": ("axes_swap_yx", "scale_neg", "path_nowhere", "json=junk"),
            "0/0/zarr.json": ("shape_x+8", "dtype=int16", "chunks_x=4", "json=junk"),
        }
    if kind.startswith("zarr_"):
        group, array = ("zarr.json", "0/zarr.json") if kind != "zarr_v2raw" else (".zattrs", "0/.zarray")
        return {
            group: ("axes_swap_yx", "axes_drop", "scale_neg", "path_nowhere", "version=9.9", "levels_dup", "json=junk"),
            array: ("shape_x+8", "shape_x-4", "dtype=int16", "chunks_x=4", "codec=bogus", "json=junk"),
        }
    return {
        "": (
            "SizeT=8",
            "SizeZ=4",
            "SizeZ=1",
            "SizeC=4",
            "SizeX+1",
            "Type=uint8",
            "Type=int16",
            "DimensionOrder=XYTZC",
            "no_tiffdata",
            "xml=junk",
            "IFD=99",
            "PlaneCount=1",
            # our checksum annotation (a no-op for tifffile's file, which has none)
            "sum=0",
            "sum=swap",
            "annotation=none",
            "UUID=urn:uuid:0",
        )
    }


def cases(total: int | None = None) -> list[Case]:
    """Every case of a run; ``total`` (default env OME_ARROW_CORE_FUZZ_CASES) scales the random variants."""
    if total is None:
        total = int(os.environ.get("OME_ARROW_CORE_FUZZ_CASES", "0") or 0)
    groups = [(k, m) for k, members in KINDS.items() for m in members]
    per = dict(DEFAULT_VARIANTS)
    fixed = len(groups) * (len(per) + 5)  # rough count of the non-random cases
    if total:
        scale = max(1.0, (total - fixed) / (len(groups) * sum(per.values())))
        per = {c: max(n, math.ceil(n * scale)) for c, n in per.items()}
    out: list[Case] = []
    for kind, member in groups:
        for off in ("0", "8", "half", "end-1", "end-8"):
            out.append(Case(kind, "truncate", member, off))
        if (kind, member) not in NO_RANDOM_BYTES:
            for cls, n in per.items():
                out += [Case(kind, cls, member, f"r{i}") for i in range(n)]
        if kind.startswith("zarr_"):
            out.append(Case(kind, "delete", member, role(member)))
            if kind != "zarr_foreign":  # a chunk of the twin store: same shape, other pixels
                out.append(Case(kind, "swap_twin", member, "-"))
        if kind.startswith("ds_"):
            out += [
                Case(kind, "delete", member, "-"),
                Case(kind, "swap_twin", member, "-"),
                Case(kind, "swap_other", member, "-"),
            ]
    for kind in KINDS:
        for member, lies in _lies(kind).items():
            out += [Case(kind, "lie", member, lie) for lie in lies]
    return out


def fifo_cases() -> list[Case]:
    """A FIFO in place of each member of each kind (one per distinct role)."""
    out = []
    for kind, members in KINDS.items():
        for member in members:
            out.append(Case(kind, "fifo", member, "-"))
    return out


# -- mutations ------------------------------------------------------------------------------------
def _rng(case: Case) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(case.id.encode())])


def member_path(root: Path, member: str) -> Path:
    """Member ``member`` of the sample at ``root`` (a pattern names its one match; none: the plain name)."""
    if "*" in member:
        found = sorted(root.glob(member))
        assert len(found) <= 1, f"{member} names {len(found)} files of {root}"
        return found[0] if found else root / member
    return root / member if member else root


def mutate(case: Case, root: Path, partners: dict[str, Path]) -> None:
    """Apply ``case`` to the sample at ``root`` (``partners``: "twin"/"other" samples of the same kind)."""
    file = member_path(root, case.member)
    rng = _rng(case)
    if case.cls in BYTE_CLASSES:
        data = bytearray(file.read_bytes())
        size = len(data)
        if case.cls == "truncate":
            named = {"0": 0, "1": 1, "8": 8, "half": size // 2, "end-1": size - 1, "end-8": size - 8}
            at = named[case.arg] if case.arg in named else int(rng.integers(0, size))
            data = data[: max(0, min(at, size - 1))]
        elif case.cls == "bitflip":
            at = int(rng.integers(0, size))
            data[at] ^= 1 << int(rng.integers(0, 8))
        elif case.cls == "byteset":
            at = int(rng.integers(0, size))
            data[at] = (data[at] + int(rng.integers(1, 256))) % 256
        else:  # zero
            n = int(rng.integers(1, 257))
            at = int(rng.integers(0, max(1, size - n)))
            data[at : at + n] = bytes(len(data[at : at + n]))
        file.write_bytes(bytes(data))
    elif case.cls == "delete":
        file.unlink()
    elif case.cls in ("swap_twin", "swap_other"):
        src = member_path(partners["twin" if case.cls == "swap_twin" else "other"], case.member)
        shutil.copyfile(src, file)
    elif case.cls == "lie":
        lie(case, root, file)
    elif case.cls == "fifo":
        file.unlink()
        os.mkfifo(file)
    else:
        raise ValueError(case.cls)


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

        def edit_record(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            rec = rows[0]["ome_arrow"]
            pm = rec["pixels_meta"]
            if arg == "size_x+1":
                pm["size_x"] += 1
            elif arg == "size_z*2":
                pm["size_z"] *= 2
            elif arg == "size_yx=60000":
                pm["size_x"] = pm["size_y"] = 60000
            elif arg.startswith("type="):
                pm["type"] = arg.split("=")[1]
            elif arg == "dup_plane":
                rec["planes"][1] = dict(rec["planes"][0])
            elif arg == "plane_z=5":
                rec["planes"][0]["z"] = 5
            elif arg == "drop_plane":
                rec["planes"] = rec["planes"][1:]
            elif arg == "size_c=0":
                pm["size_c"] = 0
            return rows

        _rewrite_parquet(file, edit_record)
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
