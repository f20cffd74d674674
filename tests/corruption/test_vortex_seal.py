"""Damaged Vortex files (single images and dataset chunk files) are refused before vortex parses them.

vortex-data 0.93 aborts the process on some damaged files (a Rust panic that cannot unwind), so
every Vortex file we write carries a whole-file XXH3-64 seal that is checked before
``vortex.open``; files without one (older writes) are first read by vortex in a child process.
Each test asserts our error naming the file, or exactly the file's pixels, and that vortex in
this process never opened a file that failed those checks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

vx = pytest.importorskip("vortex")
pytest.importorskip("ome_arrow_vortex")

from ome_arrow_core import (  # noqa: E402
    OMEArrow,
    OMEArrowDataset,
    write_dataset,
)
from ome_arrow_core.cli import main as cli  # noqa: E402
from ome_arrow_core.errors import ChecksumError, DamagedFileError, SchemaError, StorageError  # noqa: E402
from ome_arrow_vortex.seal import MAGIC, SEAL_SIZE, check_seal, guard, seal, unchanged  # noqa: E402

A = np.random.default_rng(1).integers(1, 60000, (2, 2, 16, 16)).astype("uint16")
B = np.random.default_rng(2).integers(1, 60000, (2, 2, 16, 16)).astype("uint16")
#: A bit flip that makes vortex-data 0.93 abort on the unsealed image file (found by the corruption harness).
PANIC_FLIP = (1000, 4)


# -- helpers --------------------------------------------------------------------------------------
def write_image(path: Path) -> Path:
    OMEArrow(A, "ZCYX").export("vortex", path, chunk_shape=(8, 8))
    return path


def write_ds(path: Path) -> Path:
    write_dataset([A, B], path, chunk_format="vortex", dim_order="ZCYX", chunk_shape=(8, 8), progress=False)
    return path


def seal_offset(file: Path) -> int:
    at = file.read_bytes().rfind(MAGIC)
    assert at > 0
    return at


def unseal(file: Path) -> None:
    """Remove the seal: the file as vortex wrote it (as ome-arrow-vortex wrote files before seals)."""
    data = bytearray(file.read_bytes())
    at = data.rfind(MAGIC)
    del data[at : at + SEAL_SIZE]
    file.write_bytes(bytes(data))


def places(file: Path) -> dict[str, int]:
    """Offsets of the parts of a sealed file: vortex's header, pixel data, footer; our seal; vortex's end."""
    data = file.read_bytes()
    at = data.rfind(MAGIC)
    pixels = data.find(A[0, 0, 0, :4].tobytes())
    return {
        "header": 1,
        "data": pixels if pixels > 0 else len(data) // 3,
        "footer": at - 24,
        "seal_checksum": at + 25,
        "seal_offset": at + 17,
        "postscript": at + SEAL_SIZE + 6,
        "eof_length": len(data) - 6,
        "eof_magic": len(data) - 2,
    }


def damage(file: Path, at: int, how: str) -> None:
    data = bytearray(file.read_bytes())
    if how == "flip":
        data[at] ^= 0x10
    else:  # zero 16 bytes
        data[at : at + 16] = bytes(len(data[at : at + 16]))
    file.write_bytes(bytes(data))


@pytest.fixture
def vortex_opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The paths ``vortex.open`` is called with in this process (the real function still runs)."""
    calls: list[str] = []
    real = vx.open

    def spy(path: Any, *args: Any, **kw: Any) -> Any:
        calls.append(str(path))
        return real(path, *args, **kw)

    monkeypatch.setattr(vx, "open", spy)
    yield calls


def read_image(file: Path, **kw: Any) -> np.ndarray:
    out: np.ndarray = OMEArrow(file, **kw).to_numpy(layout="TZCYX")  # written ZCYX
    return out


def read_ds(root: Path) -> list[np.ndarray]:
    ds = OMEArrowDataset.scan(root)
    return [ds[i].to_numpy(layout="TZCYX") for i in range(len(ds))] + [ds.read(layout="TZCYX")]


# -- sealed files ---------------------------------------------------------------------------------
def test_a_sealed_file_reads_exactly_and_vortex_still_reads_it(tmp_path: Path) -> None:
    file = write_image(tmp_path / "a.vortex")
    assert check_seal(file).sealed
    assert np.array_equal(read_image(file)[0], A)
    plain = tmp_path / "plain.vortex"
    plain.write_bytes(file.read_bytes())
    unseal(plain)
    assert not check_seal(plain).sealed
    sealed_table = vx.open(str(file)).to_arrow().read_all()
    assert sealed_table.equals(vx.open(str(plain)).to_arrow().read_all())  # the seal is invisible to vortex
    assert file.stat().st_size == plain.stat().st_size + SEAL_SIZE


def test_every_single_bit_flip_is_caught_by_the_seal(tmp_path: Path) -> None:
    """Flip bit 3 of every byte of a sealed file: the seal fails, or (only in its own magic) looks absent."""
    file = write_image(tmp_path / "a.vortex")
    data = file.read_bytes()
    at = data.rfind(MAGIC)
    looked_unsealed = []
    for k in range(len(data)):
        mutant = bytearray(data)
        mutant[k] ^= 0x08
        file.write_bytes(bytes(mutant))
        try:
            found = check_seal(file)
        except (ChecksumError, DamagedFileError) as exc:
            assert str(file) in str(exc)
            continue
        assert not found.sealed, f"a flip at byte {k} passed the seal"
        looked_unsealed.append(k)
    assert looked_unsealed == list(range(at, at + len(MAGIC)))


@pytest.mark.parametrize("how", ["flip", "zero"])
@pytest.mark.parametrize(
    "part", ["header", "data", "footer", "seal_checksum", "seal_offset", "postscript", "eof_length", "eof_magic"]
)
def test_a_damaged_image_file_is_refused_before_vortex_opens_it(
    tmp_path: Path, part: str, how: str, vortex_opens: list[str]
) -> None:
    file = write_image(tmp_path / "a.vortex")
    damage(file, places(file)[part], how)
    with pytest.raises((ChecksumError, DamagedFileError)) as err:
        read_image(file)
    assert str(file) in str(err.value)
    assert str(file) not in vortex_opens


def test_damage_to_the_seal_magic_only_reads_the_pixels(tmp_path: Path) -> None:
    """The seal's own magic is the one place where damage makes a file look unsealed: it is then
    probed in a child process, and its vortex bytes (intact) read exactly."""
    file = write_image(tmp_path / "a.vortex")
    damage(file, seal_offset(file) + 2, "flip")
    assert not check_seal(file).sealed
    assert np.array_equal(read_image(file)[0], A)


@pytest.mark.parametrize("keep", ["0", "4", "8", "half", "end-1", "end-8", "end-40", "end-200"])
def test_a_truncated_image_file_is_refused_before_vortex_opens_it(
    tmp_path: Path, keep: str, vortex_opens: list[str]
) -> None:
    file = write_image(tmp_path / "a.vortex")
    data = file.read_bytes()
    n = len(data)
    named = {"0": 0, "4": 4, "8": 8, "half": n // 2}
    size = named[keep] if keep in named else n - int(keep.split("-")[1])
    file.write_bytes(data[:size])
    with pytest.raises((ChecksumError, DamagedFileError)) as err:
        read_image(file)
    assert str(file) in str(err.value)
    assert vortex_opens == []


def test_a_metadata_lie_is_refused_by_the_seal(tmp_path: Path, vortex_opens: list[str]) -> None:
    file = write_image(tmp_path / "a.vortex")
    data = file.read_bytes()
    assert data.count(b'"X": 16') == 1
    file.write_bytes(data.replace(b'"X": 16', b'"X": 17'))
    with pytest.raises(ChecksumError, match="whole-file checksum") as err:
        read_image(file)
    assert str(file) in str(err.value) and vortex_opens == []


@pytest.mark.parametrize("lie", ["size_x+1", "dtype=int16", "size_z*2"])
def test_a_resealed_metadata_lie_is_our_error_not_a_crash(tmp_path: Path, lie: str) -> None:
    """Metadata rewritten and the seal recomputed: the bytes pass the seal, vortex parses them without
    harm, and our own checks of the metadata against the rows refuse the file."""
    import pyarrow as pa

    file = write_image(tmp_path / "a.vortex")
    table = vx.open(str(file)).to_arrow().read_all()
    doc = json.loads(table.column("meta")[0].as_py())
    sizes = doc["image"]["sizes"]
    if lie == "size_x+1":
        sizes["X"] += 1
    elif lie == "size_z*2":
        sizes["Z"] *= 2
    else:
        doc["image"]["dtype"] = "int16"
    metas = pa.array([json.dumps(doc)] + [None] * (table.num_rows - 1), pa.string())
    table = table.set_column(table.schema.get_field_index("meta"), "meta", metas)
    plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.large_binary()}
    table = table.cast(pa.schema([f.with_type(plain.get(f.type, f.type)) for f in table.schema]))
    file.unlink()
    vx.io.write(table, str(file))
    seal(file)
    assert check_seal(file).sealed
    with pytest.raises(SchemaError) as err:  # the metadata disagrees with the rows (or the checksummed dtype)
        read_image(file)
    assert str(file) in str(err.value)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_sealed_files_round_trip_and_any_changed_byte_is_caught(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Property: any image (shape, dtype, chunk, compression) reads back exactly from its sealed file, and
    any one changed byte outside the seal's magic makes the seal fail before vortex is asked."""
    shape = tuple(data.draw(st.integers(1, n), label=ax) for ax, n in zip("ZCYX", (3, 2, 40, 40)))
    dtype = data.draw(st.sampled_from(["uint8", "int16", "uint16", "float32", "float64"]), label="dtype")
    chunk = (data.draw(st.integers(1, shape[2])), data.draw(st.integers(1, shape[3])))
    compression = data.draw(st.sampled_from([None, "zstd"]), label="compression")
    arr = np.random.default_rng(len(shape) + shape[3]).integers(0, 100, shape).astype(dtype)
    file = tmp_path_factory.mktemp("prop") / "p.vortex"
    OMEArrow(arr, "ZCYX").export("vortex", file, chunk_shape=chunk, compression=compression)
    assert check_seal(file).sealed
    assert np.array_equal(read_image(file)[0], arr)
    raw = bytearray(file.read_bytes())
    magic = raw.rfind(MAGIC)
    at = data.draw(st.integers(0, len(raw) - 1).filter(lambda k: not magic <= k < magic + len(MAGIC)), label="at")
    raw[at] = (raw[at] + data.draw(st.integers(1, 255), label="delta")) % 256
    file.write_bytes(bytes(raw))
    with pytest.raises((ChecksumError, DamagedFileError)) as err:
        check_seal(file)
    assert str(file) in str(err.value)


# -- dataset chunk files --------------------------------------------------------------------------
def test_a_sealed_chunk_file_reads_exactly(tmp_path: Path) -> None:
    root = write_ds(tmp_path / "d.ome.parquet")
    assert check_seal(root, "chunks.vortex").sealed
    got = read_ds(root)
    assert np.array_equal(got[0][0], A) and np.array_equal(got[1][0], B)


@pytest.mark.parametrize("how", ["flip", "zero"])
@pytest.mark.parametrize("part", ["header", "data", "footer", "seal_checksum", "postscript", "eof_length"])
def test_a_damaged_chunk_file_is_refused_before_vortex_opens_it(
    tmp_path: Path, part: str, how: str, vortex_opens: list[str]
) -> None:
    root = write_ds(tmp_path / "d.ome.parquet")
    file = root / "chunks.vortex"
    damage(file, places(file)[part], how)
    with pytest.raises((ChecksumError, DamagedFileError)) as err:
        read_ds(root)
    assert "chunks.vortex" in str(err.value) and str(root) in str(err.value)
    assert vortex_opens == []


@pytest.mark.parametrize("keep", ["8", "half", "end-8", "end-40"])
def test_a_truncated_chunk_file_is_refused_before_vortex_opens_it(
    tmp_path: Path, keep: str, vortex_opens: list[str]
) -> None:
    root = write_ds(tmp_path / "d.ome.parquet")
    file = root / "chunks.vortex"
    data = file.read_bytes()
    named = {"8": 8, "half": len(data) // 2}
    size = named[keep] if keep in named else len(data) - int(keep.split("-")[1])
    file.write_bytes(data[:size])
    with pytest.raises((ChecksumError, DamagedFileError)) as err:
        read_ds(root)
    assert "chunks.vortex" in str(err.value) and vortex_opens == []


# -- files written before seals -------------------------------------------------------------------
def test_unsealed_files_still_read(tmp_path: Path) -> None:
    file = write_image(tmp_path / "a.vortex")
    unseal(file)
    assert np.array_equal(read_image(file)[0], A)
    assert np.array_equal(read_image(file, verify=False)[0], A)
    assert OMEArrow.scan(file).source.sealed is False
    from ome_arrow_core import verify

    report = verify(file)
    assert report.ok and any("no whole-file checksum" in n for n in report.notes)
    root = write_ds(tmp_path / "d.ome.parquet")
    unseal(root / "chunks.vortex")
    got = read_ds(root)
    assert np.array_equal(got[0][0], A) and np.array_equal(got[1][0], B)


def test_an_unsealed_file_that_crashes_vortex_is_our_error(tmp_path: Path) -> None:
    file = write_image(tmp_path / "a.vortex")
    unseal(file)
    at, bit = PANIC_FLIP
    data = bytearray(file.read_bytes())
    data[at] ^= 1 << bit
    file.write_bytes(bytes(data))
    # the premise: vortex aborts a process that reads this file unchecked
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from ome_arrow_core import OMEArrow; OMEArrow({str(file)!r}, verify=False).to_numpy()",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "RUST_BACKTRACE": "0"},
    )
    assert child.returncode < 0 and "panicked" in child.stderr
    with pytest.raises(DamagedFileError, match="crashed") as err:
        read_image(file)
    assert str(file) in str(err.value)


def test_an_unsealed_truncated_file_is_refused_without_vortex(tmp_path: Path, vortex_opens: list[str]) -> None:
    file = write_image(tmp_path / "a.vortex")
    unseal(file)
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(DamagedFileError, match="Vortex magic"):
        read_image(file)
    assert vortex_opens == []


def test_a_file_changed_after_its_check_is_refused(tmp_path: Path) -> None:
    file = write_image(tmp_path / "a.vortex")
    found = guard(file)
    unchanged(found, file)
    write_image(tmp_path / "b.vortex").replace(file)
    with pytest.raises(StorageError, match="changed while it was being opened"):
        unchanged(found, file)


# -- ome-arrow-core verify -------------------------------------------------------------------------
def test_verify_reports_a_damaged_file_and_chunk_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write_image(tmp_path / "a.vortex")
    root = write_ds(tmp_path / "d.ome.parquet")
    assert cli(["verify", str(file)]) == 0 and cli(["verify", str(root)]) == 0
    capsys.readouterr()
    damage(file, places(file)["data"], "flip")
    damage(root / "chunks.vortex", places(root / "chunks.vortex")["footer"], "flip")
    assert cli(["verify", str(file)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "whole-file checksum" in out and str(file) in out
    assert cli(["verify", str(root)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and "chunks.vortex" in out and "whole-file checksum" in out
