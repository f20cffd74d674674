"""Stacks whose files are damaged, replaced or removed: an error naming the file, never wrong pixels.

Members here are .npy files (header checked against the file size) and OME-Arrow struct-record
Parquet files (checksummed). TIFF members are in tests/backends/test_tiff_stacks.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow
from ome_arrow_core.errors import DamagedFileError, SchemaError, StorageError
from ome_arrow_core.testing import check_reader


def npy_stack(folder: Path, n: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    arrs = [rng.integers(0, 60000, (8, 8)).astype(np.uint16) for _ in range(n)]
    for i, a in enumerate(arrs):
        np.save(folder / f"p{i}.npy", a)
    return arrs


def test_truncated_member_is_named(tmp_path: Path) -> None:
    npy_stack(tmp_path)
    img = OMEArrow.scan(str(tmp_path / "p*.npy"))
    member = tmp_path / "p2.npy"
    member.write_bytes(member.read_bytes()[:-10])
    with pytest.raises(DamagedFileError, match=r"p2\.npy: .*truncated"):
        img.to_numpy()
    with pytest.raises(DamagedFileError, match=r"p2\.npy"):
        OMEArrow(str(tmp_path / "p*.npy"))


def test_first_member_truncated_before_scan(tmp_path: Path) -> None:
    npy_stack(tmp_path)
    (tmp_path / "p0.npy").write_bytes((tmp_path / "p0.npy").read_bytes()[:40])
    with pytest.raises(DamagedFileError, match=r"p0\.npy"):
        OMEArrow.scan(str(tmp_path / "p*.npy"))


@pytest.mark.parametrize("offset", [0, 9, 30, 60])
def test_flipped_header_byte_is_refused(tmp_path: Path, offset: int) -> None:
    """A flipped byte in the magic, the header length or the header dict: refused, naming the file."""
    npy_stack(tmp_path)
    img = OMEArrow.scan(str(tmp_path / "p*.npy"))
    member = tmp_path / "p3.npy"
    data = bytearray(member.read_bytes())
    data[offset] ^= 0x40
    member.write_bytes(bytes(data))
    with pytest.raises((DamagedFileError, SchemaError), match=r"p3\.npy"):
        img.tensor_view(z=3).to_numpy()


def test_member_replaced_by_another_shape_after_scan(tmp_path: Path) -> None:
    arrs = npy_stack(tmp_path)
    img = OMEArrow.scan(str(tmp_path / "p*.npy"))
    np.testing.assert_array_equal(img.tensor_view(z=1, layout="YX").to_numpy(), arrs[1])  # opened and kept
    np.save(tmp_path / "p1.npy", np.zeros((8, 9), np.uint16))
    with pytest.raises(
        SchemaError, match=r"p1\.npy \(Z=1 .* holds TZCYX \(1, 1, 1, 8, 9\) uint16, but .*\(1, 1, 1, 8, 8\)"
    ):
        img.tensor_view(z=1).to_numpy()
    np.save(tmp_path / "p0.npy", np.zeros((8, 8), np.int32))  # the first file too
    with pytest.raises(SchemaError, match=r"p0\.npy \(Z=0 .* int32"):
        img.tensor_view(z=0).to_numpy()


def test_member_replaced_by_same_shape_gives_its_new_pixels(tmp_path: Path) -> None:
    npy_stack(tmp_path)
    img = OMEArrow.scan(str(tmp_path / "p*.npy"))
    img.tensor_view(z=2).to_numpy()
    new = np.full((8, 8), 7, np.uint16)
    os.remove(tmp_path / "p2.npy")  # a new inode: the kept source is not reused
    np.save(tmp_path / "p2.npy", new)
    np.testing.assert_array_equal(img.tensor_view(z=2, layout="YX").to_numpy(), new)


def test_missing_member_is_named(tmp_path: Path) -> None:
    npy_stack(tmp_path)
    files = [tmp_path / f"p{i}.npy" for i in range(4)]
    os.remove(files[2])
    with pytest.raises(FileNotFoundError, match=r"p2\.npy' \(Z=2\), which does not exist"):
        OMEArrow.scan(files)
    np.save(files[2], np.zeros((8, 8), np.uint16))
    img = OMEArrow.scan(files)
    os.remove(files[3])
    with pytest.raises(StorageError, match=r"p3\.npy.*No such file"):
        img.to_numpy()


def test_member_replaced_by_a_directory(tmp_path: Path) -> None:
    npy_stack(tmp_path)
    img = OMEArrow.scan(str(tmp_path / "p*.npy"))
    os.remove(tmp_path / "p1.npy")
    (tmp_path / "p1.npy").mkdir()
    with pytest.raises((StorageError, SchemaError), match=r"p1\.npy"):
        img.to_numpy()


def test_flipped_pixel_byte_in_a_record_member_is_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    arrs = [rng.integers(0, 2**31, (16, 16)).astype(np.int32) for _ in range(3)]
    files = [tmp_path / f"r{i}.parquet" for i in range(3)]
    for arr, f in zip(arrs, files):
        OMEArrow(arr).export("parquet", f, layout="record", compression="none")
    img = OMEArrow.scan(files, dim_order="T")
    data = bytearray(files[1].read_bytes())
    at = data.find(arrs[1].tobytes()[:64])
    assert at > 0
    data[at + 20] ^= 0x01
    files[1].write_bytes(bytes(data))
    np.testing.assert_array_equal(img.tensor_view(t=0, layout="YX").to_numpy(), arrs[0])
    with pytest.raises(DamagedFileError, match=r"r1\.parquet"):
        img.tensor_view(t=1).to_numpy()


@pytest.mark.parametrize("dtype", ["uint8", "int16", ">u2", "float32", "float64", "bool"])
@pytest.mark.parametrize("shape", [(5, 6), (3, 5, 6), (2, 3, 4, 5), (2, 3, 2, 4, 5)])
def test_npy_reader_passes_the_plugin_kit(tmp_path: Path, dtype: str, shape: tuple[int, ...]) -> None:
    """The built-in .npy reader: every selection, threads, empty/truncated/garbage files refused."""
    rng = np.random.default_rng(5)
    arr = (rng.integers(0, 2, shape) if dtype == "bool" else rng.integers(0, 100, shape)).astype(dtype)
    path = tmp_path / "a.npy"
    np.save(path, arr)
    order = {2: "YX", 3: "ZYX", 4: "TCYX", 5: "TCZYX"}[len(shape)]
    from ome_arrow_core.layout import to_canonical

    truth = np.ascontiguousarray(to_canonical(arr.astype(arr.dtype.newbyteorder("=")), order))
    check_reader(path, truth)
    np.save(tmp_path / "f.npy", np.asfortranarray(arr))
    check_reader(tmp_path / "f.npy", truth)


def test_npy_reader_refuses_what_is_not_an_image(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.arange(4))
    with pytest.raises(SchemaError, match=r"v\.npy holds a 1-D array"):
        OMEArrow.scan(tmp_path / "v.npy")
    np.save(tmp_path / "o.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(Exception, match=r"o\.npy|object"):
        OMEArrow.scan(tmp_path / "o.npy")
    np.save(tmp_path / "long.npy", np.zeros((2, 2), np.uint8))
    with open(tmp_path / "long.npy", "ab") as f:
        f.write(b"\0")
    with pytest.raises(DamagedFileError, match=r"long\.npy: .*longer than its header says"):
        OMEArrow.scan(tmp_path / "long.npy")


def _aged(path: Path) -> Path:
    """``path`` with its modification time a second back (a rewrite now gets a new one, whatever the clock)."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    return path


@pytest.mark.parametrize("how", ["replaced", "in-place"])
def test_an_npy_file_written_since_it_was_opened_raises(tmp_path: Path, how: str) -> None:
    """The header is read when the file is opened and the file reopened for each read: one replaced since by an
    array of the same byte count (int16 pixels, another shape) was read under the old header: -2 as 65534."""
    import errno
    import pickle

    arr = np.arange(2 * 4 * 8, dtype=np.uint16).reshape(2, 4, 8)
    np.save(tmp_path / "x.npy", arr)
    path = _aged(tmp_path / "x.npy")
    img = OMEArrow.scan(path)
    np.testing.assert_array_equal(img.tensor_view(z=0, layout="YX").to_numpy(), arr[0])
    shipped = pickle.dumps(img.tensor_view(z=1, layout="YX"))
    np.save(tmp_path / "y.npy", np.full((2, 8, 4), -2, np.int16))  # same header length and byte count
    if how == "replaced":
        os.replace(tmp_path / "y.npy", path)
    else:
        path.write_bytes((tmp_path / "y.npy").read_bytes())
    for read in (img.to_numpy, lambda: img.tensor_view(z=1).to_numpy(), lambda: pickle.loads(shipped).to_numpy()):
        with pytest.raises(StorageError, match=rf"x\.npy was {'replaced' if how == 'replaced' else 'written'}") as e:
            read()
        assert e.value.errno == errno.ESTALE
    np.testing.assert_array_equal(OMEArrow.scan(path).to_numpy()[0, 0, 0], np.full((8, 4), -2, np.int16))
