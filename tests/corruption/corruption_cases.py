"""Corruption cases: the storage kinds, the mutation classes and how each mutant is made.

A case is (kind, mutation class, member, variant); everything random is seeded by the case's id,
so a run is reproducible. The metadata lies ("lie" cases) are listed here and made by corruption_lies.py.
See corruption_harness.py for how cases are read back and judged (corruption_samples.py: the files mutated).
"""

from __future__ import annotations

import math
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from corruption_lies import lie
from corruption_vortex import CHUNK_LIES, RECORD_LIES, TABLE_LIES, UNSEALED, VORTEX_RECORD_KINDS, pixel_spans

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
    # OME-Arrow records in Vortex (corruption_vortex.py): ours (sealed), the reference's, a table of its records
    **{kind: ("",) for kind in VORTEX_RECORD_KINDS},
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
    **{kind: ".vortex" for kind in VORTEX_RECORD_KINDS},
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
        return {"": RECORD_LIES}
    if kind in VORTEX_RECORD_KINDS:
        if kind == "vortex_rectable":
            return {"": TABLE_LIES}
        return {"": RECORD_LIES if kind not in UNSEALED else (*RECORD_LIES, *CHUNK_LIES)}
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
        if kind in UNSEALED:  # one bit of each stored copy of the pixels (caught: the two copies differ)
            out += [Case(kind, "bitflip", member, "pix-chunks"), Case(kind, "bitflip", member, "pix-planes")]
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


def _offset(rng: np.random.Generator, size: int, n: int, spans: list[tuple[int, int]]) -> int:
    """A random offset below ``size`` whose ``n`` bytes miss every span (pixel values of a file without checksums)."""
    for _ in range(1000):
        at = int(rng.integers(0, size))
        if not any(at < hi and lo < at + n for lo, hi in spans):
            return at
    raise AssertionError(f"no {n} bytes outside the pixel values {spans}")


def mutate(case: Case, root: Path, partners: dict[str, Path]) -> None:
    """Apply ``case`` to the sample at ``root`` (``partners``: "twin"/"other" samples of the same kind)."""
    file = member_path(root, case.member)
    rng = _rng(case)
    if case.cls in BYTE_CLASSES:
        spans = pixel_spans(file) if case.arg.startswith("pix-") else []
        data = bytearray(file.read_bytes())
        size = len(data)
        if case.arg.startswith("pix-"):  # the middle of the first plane's values in the chunks (or the planes)
            lo, hi = spans[0] if case.arg == "pix-chunks" else spans[len(spans) // 2]
            data[(lo + hi) // 2] ^= 0x10
        elif case.cls == "truncate":
            named = {"0": 0, "1": 1, "8": 8, "half": size // 2, "end-1": size - 1, "end-8": size - 8}
            at = named[case.arg] if case.arg in named else int(rng.integers(0, size))
            data = data[: max(0, min(at, size - 1))]
        elif case.cls == "bitflip":
            at = _offset(rng, size, 1, spans)
            data[at] ^= 1 << int(rng.integers(0, 8))
        elif case.cls == "byteset":
            at = _offset(rng, size, 1, spans)
            data[at] = (data[at] + int(rng.integers(1, 256))) % 256
        else:  # zero
            n = int(rng.integers(1, 257))
            at = _offset(rng, max(1, size - n), n, spans)
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
