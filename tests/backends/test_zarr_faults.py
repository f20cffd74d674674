"""Damaged and lying OME-Zarr stores: every failure is one of our errors naming the store and member."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_zarr", reason="needs ome-arrow-zarr (pip install -e backends/zarr)")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr_stores import chunk_files, write_zarr_python

from ome_arrow_core import OMEArrow, OMEArrowError
from ome_arrow_core.plugin_api import DamagedFileError, FormatVersionError

DATA = np.random.default_rng(5).integers(0, 65535, (2, 3, 32, 32)).astype(np.uint16)


def ours(tmp: Path, version: str = "0.5") -> Path:
    return OMEArrow(DATA, "CZYX").export("ome-zarr", tmp / "x.ome.zarr", version=version, chunk_shape=(1, 16, 16))


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def ngff_of(doc: dict[str, Any], version: str) -> dict[str, Any]:
    return doc["attributes"]["ome"] if version == "0.5" else doc  # type: ignore[no-any-return]


def meta_file(store: Path, version: str) -> Path:
    return store / ("zarr.json" if version == "0.5" else ".zattrs")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_truncated_chunk_names_store_and_chunk(tmp_path: Path, version: str) -> None:
    store = ours(tmp_path, version)
    victim = chunk_files(store / "0")[5]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    key = str(victim.relative_to(store))
    img = OMEArrow.scan(store)
    with pytest.raises(DamagedFileError, match=rf"x\.ome\.zarr \[{key}\]: the chunk's bytes do not match"):
        img.to_numpy()  # our checksum sees it first
    with pytest.raises(DamagedFileError, match=rf"x\.ome\.zarr \[{key}\]: reading the chunk failed"):
        OMEArrow(store, verify=False)  # without checks, the decoder's error names the chunk


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.integers(0, 10_000), where=st.integers(0, 10_000), bit=st.integers(0, 7), version=st.just("0.5")
)  # Zarr v2 stores have no checksum: see docs/ome-zarr.md
def test_a_flipped_bit_in_our_chunks_is_an_error_never_wrong_pixels(
    tmp_path_factory: pytest.TempPathFactory, which: int, where: int, bit: int, version: str
) -> None:
    store = ours(tmp_path_factory.mktemp("f"), version)
    files = chunk_files(store / "0")
    victim = files[which % len(files)]
    raw = bytearray(victim.read_bytes())
    raw[where % len(raw)] ^= 1 << bit
    victim.write_bytes(bytes(raw))
    try:
        got = OMEArrow(store).to_numpy()
    except DamagedFileError as exc:
        assert str(store) in str(exc) and str(victim.relative_to(store)) in str(exc)
    else:  # only a bit the decoder ignores (zstd's unused frame-header bit) may read, and then exactly
        assert np.array_equal(got[0], DATA), f"a flipped bit in {victim} read as wrong pixels"


def test_a_flipped_bit_in_an_uncompressed_foreign_store_cannot_be_seen(tmp_path: Path) -> None:
    """Zarr has no checksum unless a codec adds one: documented, and why our writer adds zstd checksums."""
    store = write_zarr_python(tmp_path / "x.ome.zarr", [DATA[0, 0]], "yx", chunks=(16, 16), compressor=None)
    victim = chunk_files(store / "0")[0]
    raw = bytearray(victim.read_bytes())
    raw[0] ^= 1
    victim.write_bytes(bytes(raw))
    assert int(OMEArrow(store).to_numpy()[0, 0, 0, 0, 0]) == int(DATA[0, 0, 0, 0]) ^ 1


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize(
    ("lie", "error", "match"),
    [
        ("json", DamagedFileError, "JSONDecodeError|Expecting"),
        ("version", FormatVersionError, "OME-NGFF version '9.9' is not supported"),
        ("axes_count", DamagedFileError, "has 5 dimensions .* declares 4 axes"),
        ("axes_names", DamagedFileError, "map to"),
        ("axes_dup", DamagedFileError, "repeat a name"),
        ("scale_len", DamagedFileError, "expected 5 finite numbers"),
        ("scale_neg", DamagedFileError, "holds a value <= 0"),
        ("no_path", DamagedFileError, r"no array at '7'"),
        ("multiscales", DamagedFileError, "multiscales is"),
    ],
)
def test_lying_group_metadata(tmp_path: Path, version: str, lie: str, error: type[Exception], match: str) -> None:
    store = ours(tmp_path, version)
    file = meta_file(store, version)

    def change(doc: dict[str, Any]) -> None:
        ngff = ngff_of(doc, version)
        ms = ngff["multiscales"][0]
        if lie == "version":
            (ngff if version == "0.5" else ms)["version"] = "9.9"
        elif lie == "axes_count":
            ms["axes"] = ms["axes"][1:]
            for ds in ms["datasets"]:
                ds["coordinateTransformations"][0]["scale"] = ds["coordinateTransformations"][0]["scale"][1:]
        elif lie == "axes_names":
            ms["axes"][-1]["name"] = "w"  # a space axis without a free axis to map to: no X
        elif lie == "axes_dup":
            ms["axes"][0]["name"] = "c"
        elif lie == "scale_len":
            ms["datasets"][0]["coordinateTransformations"][0]["scale"] = [1, 1, 1, 1]
        elif lie == "scale_neg":
            ms["datasets"][0]["coordinateTransformations"][0]["scale"][-1] = -1
        elif lie == "no_path":
            ms["datasets"][0]["path"] = "7"
        elif lie == "multiscales":
            ngff["multiscales"] = {}

    if lie == "json":
        file.write_text(file.read_text()[:-20])
    else:
        edit_json(file, change)
    if lie == "axes_names":
        match = r"axes \['t', 'c', 'z', 'y', 'w'\] map to TCZYZ"
    with pytest.raises(error, match=match) as info:
        OMEArrow.scan(store)
    assert str(store) in str(info.value)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("lie", ["bigger", "smaller", "dtype", "unknown_codec"])
def test_lying_array_metadata(tmp_path: Path, version: str, lie: str) -> None:
    store = ours(tmp_path, version)
    file = store / "0" / ("zarr.json" if version == "0.5" else ".zarray")

    def change(doc: dict[str, Any]) -> None:
        if lie == "bigger":
            doc["shape"][-1] = 40  # a chunk column that no file holds: fill value, as Zarr says
        elif lie == "smaller":
            doc["shape"][-1] = 20
        elif lie == "dtype":
            doc["data_type" if version == "0.5" else "dtype"] = "uint8" if version == "0.5" else "|u1"
        elif lie == "unknown_codec":
            if version == "0.5":
                doc["codecs"][-1]["name"] = "no-such-codec"
            else:
                doc["compressor"]["id"] = "no-such-codec"

    edit_json(file, change)
    if lie in ("bigger", "smaller"):  # our checksums record the shape the store was written with
        with pytest.raises(
            DamagedFileError,
            match=r"x\.ome\.zarr \[0\]: the array's metadata says shape "
            r"\[1, 2, 3, 32, \d\d\] but the store was written with shape",
        ):
            OMEArrow.scan(store)
        return
    with pytest.raises(OMEArrowError) as info:
        OMEArrow(store)
    assert str(store) in str(info.value)


def test_errors_are_ours_never_zarr_or_numcodecs(tmp_path: Path) -> None:
    store = ours(tmp_path)
    for f in chunk_files(store / "0"):
        f.write_bytes(b"\x00" * 7)
    with pytest.raises(DamagedFileError) as info:
        OMEArrow(store)
    assert type(info.value).__module__.startswith("ome_arrow_core")


def test_empty_directory_or_file_named_zarr_is_damaged(tmp_path: Path) -> None:
    (tmp_path / "empty.ome.zarr").mkdir()
    (tmp_path / "file.zarr").write_bytes(b"junk")
    for p in (tmp_path / "empty.ome.zarr", tmp_path / "file.zarr"):
        with pytest.raises(DamagedFileError, match=rf"{p.name} \[zarr.json or .zattrs\]: opening the OME-Zarr store"):
            OMEArrow.scan(p)


def test_unreadable_chunk_is_a_storage_error(tmp_path: Path) -> None:
    import os

    from ome_arrow_core.plugin_api import StorageError

    store = ours(tmp_path)
    victim = chunk_files(store / "0")[0]
    os.chmod(victim, 0)
    if os.access(victim, os.R_OK):  # root reads anything
        pytest.skip("running as root: permissions do not stop reads")
    with pytest.raises(StorageError, match="x.ome.zarr"):
        OMEArrow(store)


def test_damaged_labels_list_blocks_only_the_labels(tmp_path: Path) -> None:
    import zarr

    store = ours(tmp_path)
    labels = zarr.open_group(store, mode="a").create_group("labels")
    labels.attrs["ome"] = {"version": "0.5", "labels": "nuclei"}  # a string, not a list
    img = OMEArrow.scan(store)
    assert img.info()["labels"] == [] and "expected a list of names" in img.info()["labels_error"]
    np.testing.assert_array_equal(img.to_numpy()[0], DATA)
    with pytest.raises(DamagedFileError, match=r"x\.ome\.zarr \[labels\]: labels is 'nuclei'"):
        OMEArrow.scan(store, label="nuclei")


@pytest.mark.parametrize("lie", ["bigger", "smaller"])
def test_lying_shape_of_a_foreign_store(tmp_path: Path, lie: str) -> None:
    """A store without our checksums: a bigger shape reads its missing chunks as the fill value (Zarr's rule), or
    fails with missing="error"; a smaller one is a valid store whose chunks are read and cut."""
    store = write_zarr_python(tmp_path / "x.ome.zarr", [DATA[0]], "zyx", chunks=(1, 16, 16))
    edit_json(store / "0" / "zarr.json", lambda doc: doc["shape"].__setitem__(-1, 40 if lie == "bigger" else 20))
    if lie == "smaller":
        assert OMEArrow(store).shape[-1] == 20
        return
    got = OMEArrow(store, missing="fill").to_numpy()
    assert got.shape[-1] == 40 and np.array_equal(got[0, 0, :, :, :32], DATA[0])
    assert not got[..., 32:].any()
    with pytest.raises(DamagedFileError, match="the chunk is missing"):
        OMEArrow(store, missing="error")


def _aged(store: Path) -> Path:
    """Every file of ``store`` with its modification time a second back (a rewrite now gets a new one)."""
    import os

    for f in store.rglob("*"):
        if f.is_file():
            st = f.stat()
            os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    return store


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize("how", ["store-replaced", "metadata-rewritten"])
def test_a_store_replaced_after_it_was_opened_raises_never_its_bytes_under_the_old_dtype(
    tmp_path: Path, version: str, how: str
) -> None:
    """A store without our checksums (zarr-python's), replaced since it was opened by one of another dtype and the
    same shape: zarr read its chunks under the array's old metadata (int16 -5 as uint16 65531), silently."""
    import errno
    import shutil

    from ome_arrow_core.plugin_api import StorageError

    old, new = DATA[0], np.full(DATA[0].shape, -5, np.int16)
    store = _aged(write_zarr_python(tmp_path / "a.ome.zarr", [old], "zyx", version=version, chunks=(1, 16, 16)))
    other = write_zarr_python(tmp_path / "b.ome.zarr", [new], "zyx", version=version, chunks=(1, 16, 16))
    img = OMEArrow.scan(store)
    np.testing.assert_array_equal(img.tensor_view(z=0, layout="YX").to_numpy(), old[0])
    if how == "store-replaced":
        shutil.rmtree(store)
        shutil.copytree(other, store)
    else:  # the same files, the array's metadata saying int16 now, its chunks int16's
        meta = "zarr.json" if version == "0.5" else ".zarray"
        for f in (other / "0").rglob("*"):
            if f.is_file():
                (store / "0" / f.relative_to(other / "0")).write_bytes(f.read_bytes())
        assert (store / "0" / meta).read_bytes() == (other / "0" / meta).read_bytes()
    for read in (img.to_numpy, lambda: img.tensor_view(z=1, layout="YX").to_numpy()):
        with pytest.raises(StorageError, match=r"a\.ome\.zarr \[0\]: the array's metadata was rewritten") as err:
            read()
        assert err.value.errno == errno.ESTALE
    np.testing.assert_array_equal(OMEArrow.scan(store).tensor_view(layout="ZYX").to_numpy(), new)
