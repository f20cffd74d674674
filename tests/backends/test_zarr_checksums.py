"""Chunk checksums of the OME-Zarr stores we write: every damaged, swapped or deleted chunk is an error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_zarr", reason="needs ome-arrow-zarr (pip install -e backends/zarr)")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr_stores import chunk_files, write_zarr_python

from ome_arrow_core import OMEArrow
from ome_arrow_core.plugin_api import ChecksumError, DamagedFileError

DATA = np.random.default_rng(7).integers(0, 65535, (2, 3, 32, 32)).astype(np.uint16)  # C Z Y X
WANT = DATA[None]  # TCZYX
VARIANTS = [("0.5", "zstd"), ("0.5", None), ("0.4", "zstd"), ("0.4", None)]


def ours(tmp: Path, version: str = "0.5", compression: str | None = "zstd", levels: int = 1) -> Path:
    return OMEArrow(DATA, "CZYX").export(
        "ome-zarr", tmp / "x.ome.zarr", version=version, compression=compression, chunk_shape=(1, 16, 16), levels=levels
    )


def array_meta(store: Path, version: str, level: str = "0") -> Path:
    return store / level / ("zarr.json" if version == "0.5" else ".zattrs")


def checksums_of_array(doc: dict[str, Any], version: str) -> dict[str, Any]:
    attrs = doc["attributes"] if version == "0.5" else doc
    return attrs["ome_arrow"]["chunk_checksums"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("version", "compression"), VARIANTS)
def test_our_stores_carry_checksums_and_read_exactly(tmp_path: Path, version: str, compression: str | None) -> None:
    store = ours(tmp_path, version, compression, levels=2)
    img = OMEArrow.scan(store)
    assert img.info()["chunk_checksums"] is True
    np.testing.assert_array_equal(img.to_numpy(), WANT)
    np.testing.assert_array_equal(OMEArrow(store, level=1).to_numpy(), WANT[..., ::2, ::2])
    entry = checksums_of_array(json.loads(array_meta(store, version).read_text()), version)
    assert entry["algorithm"] == "xxh3_64" and entry["shape"] == [1, 2, 3, 32, 32]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    variant=st.sampled_from(VARIANTS), which=st.integers(0, 10_000), at=st.integers(0, 10_000), bit=st.integers(0, 7)
)
def test_a_flipped_bit_in_any_chunk_of_ours_is_a_checksum_error(
    tmp_path_factory: pytest.TempPathFactory, variant: tuple[str, str | None], which: int, at: int, bit: int
) -> None:
    """Compressed or not, Zarr v2 or v3: never wrong pixels (zstd's own checksum is only in v3)."""
    store = ours(tmp_path_factory.mktemp("f"), *variant)
    files = chunk_files(store / "0")
    victim = files[which % len(files)]
    raw = bytearray(victim.read_bytes())
    raw[at % len(raw)] ^= 1 << bit
    victim.write_bytes(bytes(raw))
    key = str(victim.relative_to(store))
    with pytest.raises(ChecksumError, match=rf"x\.ome\.zarr \[{key}\]: the chunk's bytes do not match"):
        OMEArrow(store)


def test_verify_false_skips_the_check(tmp_path: Path) -> None:
    store = ours(tmp_path, "0.5", None)
    victim = chunk_files(store / "0")[0]
    raw = bytearray(victim.read_bytes())
    raw[0] ^= 1
    victim.write_bytes(bytes(raw))
    got = OMEArrow(store, verify=False).to_numpy()  # the documented switch: the bytes are trusted
    assert int(got[0, 0, 0, 0, 0]) == int(DATA[0, 0, 0, 0]) ^ 1
    with pytest.raises(ChecksumError):
        OMEArrow(store)


@pytest.mark.parametrize(("version", "compression"), VARIANTS)
def test_swapped_chunks_are_caught(tmp_path: Path, version: str, compression: str | None) -> None:
    store = ours(tmp_path, version, compression)
    a, b = chunk_files(store / "0")[:2]
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    with pytest.raises(ChecksumError, match=r"x\.ome\.zarr \["):
        OMEArrow(store)


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize("missing", ["fill", "error"])
def test_a_deleted_chunk_of_ours_is_never_the_fill_value(tmp_path: Path, version: str, missing: str) -> None:
    store = ours(tmp_path, version)
    victim = chunk_files(store / "0")[4]
    victim.unlink()
    key = str(victim.relative_to(store))
    img = OMEArrow.scan(store, missing=missing)
    np.testing.assert_array_equal(
        img.tensor_view(c=1, z=2, layout="YX").to_numpy(), DATA[1, 2]
    )  # other chunks still read
    with pytest.raises(
        DamagedFileError,
        match=rf"x\.ome\.zarr \[{key}\]: the chunk is missing, but the store's "
        "checksums list it",
    ):
        img.to_numpy()
    with pytest.raises(DamagedFileError, match="the chunk is missing"):
        OMEArrow(store, verify=False)  # existence is checked whatever verify says


def test_a_deleted_chunk_of_a_foreign_store_is_the_fill_value(tmp_path: Path) -> None:
    """Zarr's rule for stores without our checksums; missing="error" refuses instead."""
    store = write_zarr_python(tmp_path / "x.ome.zarr", [DATA[0]], "zyx", chunks=(1, 16, 16))
    chunk_files(store / "0")[0].unlink()
    got = OMEArrow(store).to_numpy()
    assert not got[0, 0, 0, :16, :16].any() and np.array_equal(got[0, 0, 1:], DATA[0, 1:])
    with pytest.raises(DamagedFileError, match="the chunk is missing"):
        OMEArrow(store, missing="error")


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize(
    ("lie", "match"),
    [
        ("strip", "the store was written with chunk checksums but this array's ome_arrow.chunk_checksums is NoneType"),
        ("algorithm", "chunk checksums use 'md5'"),
        ("dtype", "the array's metadata says dtype uint16 but the store was written with dtype int16"),
        ("chunks", r"the array's metadata says chunks \[1, 1, 1, 16, 16\] but the store was written with chunks"),
        ("count", "lists the wrong number of chunks"),
        ("base64", "digests are not base64"),
        ("zeros", "do not match their checksum"),
        ("axes", r"the array's metadata says axes tczxy but the store was written with axes tczyx"),
    ],
)
def test_lying_checksum_attributes(tmp_path: Path, version: str, lie: str, match: str) -> None:
    store = ours(tmp_path, version)
    file = array_meta(store, version)
    doc = json.loads(file.read_text())
    attrs = doc["attributes"] if version == "0.5" else doc
    entry = attrs["ome_arrow"]["chunk_checksums"]
    if lie == "strip":
        del attrs["ome_arrow"]
    elif lie == "algorithm":
        entry["algorithm"] = "md5"
    elif lie in ("dtype", "chunks"):
        entry[lie] = "int16" if lie == "dtype" else [1, 1, 1, 8, 8]
    elif lie == "count":
        entry["digests"] = entry["digests"][:-12]
    elif lie == "base64":
        entry["digests"] = "!" * len(entry["digests"])
    elif lie == "zeros":
        entry["digests"] = "A" * len(entry["digests"])
    if lie == "axes":  # y and x swapped in the group's NGFF metadata: the pixels would read transposed
        file = store / ("zarr.json" if version == "0.5" else ".zattrs")
        doc = json.loads(file.read_text())
        ms = (doc["attributes"]["ome"] if version == "0.5" else doc)["multiscales"][0]
        ms["axes"][3], ms["axes"][4] = ms["axes"][4], ms["axes"][3]
    file.write_text(json.dumps(doc))
    with pytest.raises(DamagedFileError, match=match) as info:
        OMEArrow(store)
    assert str(store) in str(info.value)


def test_a_group_without_our_flag_is_a_foreign_store(tmp_path: Path) -> None:
    """Our flag in the group's metadata is what turns the checks on; a copy without it reads as foreign."""
    store = ours(tmp_path)
    shutil.copytree(store, tmp_path / "copy.ome.zarr")
    file = tmp_path / "copy.ome.zarr" / "zarr.json"
    doc = json.loads(file.read_text())
    del doc["attributes"]["ome_arrow"]["chunk_checksums"]
    file.write_text(json.dumps(doc))
    img = OMEArrow.scan(tmp_path / "copy.ome.zarr")
    assert img.info()["chunk_checksums"] is False
    np.testing.assert_array_equal(img.to_numpy(), WANT)
