"""Image stacks: one lazy image from a list of paths, a glob or a file pattern of .npy / Parquet files.

Reads are counted by a recording reader (a real .npy reader that logs each open and read) and
by deleting files a selection must not need; pixels are compared with ``np.stack`` of the files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, Registry, write_dataset
from ome_arrow_core.builtins.npy_io import NpySource
from ome_arrow_core.errors import ArgumentError, SchemaError, StorageError
from ome_arrow_core.handlers import Reader
from ome_arrow_core.hookspecs import hookimpl
from ome_arrow_core.selection import Selection
from ome_arrow_core.stacks import StackSource, natural_key
from ome_arrow_core.testing import selections_for


class Recording:
    """A plugin whose reader opens .npy files with the built-in source and logs ("open"|"read", name, sel)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, Selection | None]] = []

    def opened(self) -> list[str]:
        return [name for kind, name, _ in self.log if kind == "open"]

    def read(self) -> list[str]:
        return [name for kind, name, _ in self.log if kind == "read"]

    @hookimpl
    def ome_arrow_readers(self) -> Sequence[Reader]:
        log = self.log

        class Logged(NpySource):
            def read(self, sel: Selection) -> np.ndarray:
                log.append(("read", self.path.name, sel))
                return super().read(sel)

        def open_(path: Path, **_: Any) -> NpySource:
            log.append(("open", path.name, None))
            return Logged(path)

        return [Reader(name="recording-npy", priority=50, suffixes=(".npy",), open=open_)]


def recording() -> tuple[Recording, Registry]:
    rec = Recording()
    reg = Registry(autoload=False)
    reg.register(rec, name="recording")
    return rec, reg


def planes(
    folder: Path,
    n: int,
    shape: tuple[int, ...] = (6, 7),
    dtype: str = "uint16",
    name: str = "plane_{}.npy",
    seed: int = 0,
) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        arr = rng.integers(0, 1000, shape).astype(dtype)
        np.save(folder / name.format(i), arr)
        out.append(arr)
    return out


def test_glob_sorts_naturally_and_stacks_along_z(tmp_path: Path) -> None:
    arrs = planes(tmp_path, 12)
    img = OMEArrow(str(tmp_path / "plane_*.npy"))
    assert img.shape == (1, 1, 12, 6, 7) and img.dtype == np.uint16
    np.testing.assert_array_equal(img.tensor_view(layout="ZYX").to_numpy(), np.stack(arrs))
    assert sorted(["p_10", "p_2", "p_1"], key=natural_key) == ["p_1", "p_2", "p_10"]


def test_list_with_two_axes_and_stack_shape(tmp_path: Path) -> None:
    arrs = planes(tmp_path, 6)
    files = [tmp_path / f"plane_{i}.npy" for i in range(6)]
    img = OMEArrow.scan(files, dim_order="TZ", stack_shape=(2, 3))
    assert img.shape == (2, 1, 3, 6, 7)  # TCZYX
    truth = np.stack(arrs).reshape(2, 1, 3, 6, 7)
    np.testing.assert_array_equal(img.to_numpy(), truth)
    by_c = OMEArrow.scan(files[:2], dim_order="C")
    assert by_c.shape == (1, 2, 1, 6, 7) and by_c.meta.channels[1].name == "C1"


def test_pattern_axes_from_words_and_channel_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 255, (2, 3, 4, 5)).astype(np.uint8)  # C, Z, Y, X
    for c, name in enumerate(("DAPI", "GFP")):
        for z in range(3):
            np.save(tmp_path / f"E99_C{name}_ZS{z:03d}.npy", truth[c, z])
    img = OMEArrow.scan(str(tmp_path / "E99_C<DAPI,GFP>_ZS<000-002>.npy"))
    assert img.shape == (1, 2, 3, 4, 5) and [c.name for c in img.meta.channels] == ["DAPI", "GFP"]
    assert img.info()["stack_axes"] == "CZ" and img.info()["files_opened"] == 1
    np.testing.assert_array_equal(img.to_numpy()[0], truth)


def test_members_with_their_own_axes_stack_along_a_free_one(tmp_path: Path) -> None:
    """Two-channel files (TCYX with one T) stacked along T and Z: every selection equals np.stack."""
    rng = np.random.default_rng(2)
    truth = rng.standard_normal((2, 3, 2, 5, 6)).astype(np.float32)  # T Z C Y X
    files = []
    for t in range(2):
        for z in range(3):
            files.append(tmp_path / f"t{t}z{z}.npy")
            np.save(files[-1], truth[t, z][None])  # (1, C, Y, X): TCYX
    img = OMEArrow.scan(files, dim_order="TZ", stack_shape=(2, 3))
    source = img.source
    assert isinstance(source, StackSource)
    for name, sel in selections_for(source.meta.sizes):
        np.testing.assert_array_equal(source.read(sel), sel.apply(truth), err_msg=name)


def test_scan_opens_one_file_and_a_plane_reads_one(tmp_path: Path) -> None:
    planes(tmp_path, 10)
    rec, reg = recording()
    img = OMEArrow.scan(str(tmp_path / "plane_*.npy"), registry=reg)
    assert rec.opened() == ["plane_0.npy"] and rec.read() == []
    img.tensor_view(z=7).to_numpy()
    assert rec.read() == ["plane_7.npy"] and rec.opened() == ["plane_0.npy", "plane_7.npy"]
    rec.log.clear()
    img.tensor_view(z=[7, 2, 7], roi=(1, 2, 3, 2)).to_numpy()  # a repeated plane is read once; the crop goes down
    assert rec.read() == ["plane_7.npy", "plane_2.npy"] and rec.opened() == ["plane_2.npy"]
    sel = rec.log[-1][2]
    assert sel is not None and (sel.y, sel.x) == (range(2, 4), range(1, 4))
    assert img.source.files_read == 3  # type: ignore[attr-defined]


def test_check_files_opens_every_header_and_no_pixels(tmp_path: Path) -> None:
    planes(tmp_path, 4)
    rec, reg = recording()
    OMEArrow.scan(str(tmp_path / "plane_*.npy"), registry=reg, check_files=True)
    assert rec.opened() == [f"plane_{i}.npy" for i in range(4)] and rec.read() == []
    np.save(tmp_path / "plane_2.npy", np.zeros((6, 7), np.int8))
    with pytest.raises(SchemaError, match=r"plane_2\.npy \(Z=2 .* int8"):
        OMEArrow.scan(str(tmp_path / "plane_*.npy"), check_files=True)


def test_a_selection_needs_only_its_files(tmp_path: Path) -> None:
    arrs = planes(tmp_path, 8)
    img = OMEArrow.scan(str(tmp_path / "plane_*.npy"))
    for i in (1, 2, 4, 5, 7):
        os.remove(tmp_path / f"plane_{i}.npy")
    got = img.tensor_view(z=[3, 6], layout="ZYX").to_numpy()
    np.testing.assert_array_equal(got, np.stack([arrs[3], arrs[6]]))
    with pytest.raises(StorageError, match=r"plane_1\.npy"):
        img.to_numpy()


def test_a_parquet_record_stack(tmp_path: Path) -> None:
    arrs = planes(tmp_path, 3, shape=(2, 4, 4), dtype="int16")  # ZYX files...
    files = []
    for i, arr in enumerate(arrs):  # ...written as one-row struct-record Parquet files, stacked along T
        files.append(tmp_path / f"r{i}.parquet")
        OMEArrow(arr).export("parquet", files[-1], layout="record")
    img = OMEArrow.scan(files, dim_order="T")
    assert img.shape == (3, 1, 2, 4, 4)
    np.testing.assert_array_equal(img.tensor_view(layout="TZYX").to_numpy(), np.stack(arrs))


# -- errors ---------------------------------------------------------------------------------


def test_empty_glob_and_pattern_gap_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no file matches .*nothing_\*\.npy"):
        OMEArrow.scan(str(tmp_path / "nothing_*.npy"))
    for z in (0, 1, 3):
        np.save(tmp_path / f"z{z:02d}.npy", np.zeros((2, 2), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"z02\.npy' \(Z=2\), which does not exist"):
        OMEArrow.scan(str(tmp_path / "z<00-03>.npy"))


def test_odd_member_is_named_with_what_was_expected(tmp_path: Path) -> None:
    planes(tmp_path, 3)
    np.save(tmp_path / "plane_3.npy", np.zeros((6, 7), np.float32))
    np.save(tmp_path / "plane_4.npy", np.zeros((6, 8), np.uint16))
    img = OMEArrow.scan(str(tmp_path / "plane_*.npy"))  # only the first file is opened: no error yet
    with pytest.raises(
        SchemaError, match=r"plane_3\.npy \(Z=3 .*float32.*TZCYX \(1, 1, 1, 6, 7\) uint16.*plane_0\.npy"
    ):
        img.to_numpy()
    with pytest.raises(SchemaError, match=r"plane_4\.npy \(Z=4 .* holds TZCYX \(1, 1, 1, 6, 8\) uint16"):
        img.tensor_view(z=4).to_numpy()
    np.testing.assert_array_equal(img.tensor_view(z=1, layout="YX").to_numpy(), np.load(tmp_path / "plane_1.npy"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dim_order": "TZ"}, r"pass stack_shape="),
        ({"dim_order": "TZ", "stack_shape": (2, 2)}, r"multiply to the 3 files"),
        ({"dim_order": "ZY"}, r"from T, C and Z"),
        ({"dim_order": "ZZ"}, r"from T, C and Z"),
    ],
)
def test_bad_stacking_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    planes(tmp_path, 3)
    with pytest.raises(ArgumentError, match=match):
        OMEArrow.scan(str(tmp_path / "plane_*.npy"), **kwargs)


def test_stacking_along_an_axis_the_files_have_is_refused(tmp_path: Path) -> None:
    planes(tmp_path, 2, shape=(3, 4, 4))  # ZYX files
    with pytest.raises(ArgumentError, match=r"holds 3 Z planes .* cannot be stacked along Z; .*free: TC"):
        OMEArrow.scan(str(tmp_path / "plane_*.npy"))
    assert OMEArrow.scan(str(tmp_path / "plane_*.npy"), dim_order="T").shape == (2, 1, 3, 4, 4)


def test_unknown_words_need_dim_order(tmp_path: Path) -> None:
    for w in "AB":
        for f in range(2):
            np.save(tmp_path / f"well{w}_field{f}.npy", np.full((2, 2), ord(w) + f, np.uint8))
    pattern = str(tmp_path / "well<A-B>_field<0-1>.npy")
    with pytest.raises(ArgumentError, match=r"group 1 <A-B> follows 'well', which names no axis.*dim_order="):
        OMEArrow.scan(pattern)
    img = OMEArrow.scan(pattern, dim_order="TZ")
    assert img.shape == (2, 1, 2, 2, 2) and img.to_numpy()[1, 0, 0, 0, 0] == ord("B")
    with pytest.raises(ArgumentError, match=r"names 1 axes but the pattern has 2"):
        OMEArrow.scan(pattern, dim_order="T")


def test_an_existing_file_with_glob_characters_is_itself(tmp_path: Path) -> None:
    np.save(tmp_path / "a[1].npy", np.ones((2, 3), np.uint8))
    np.save(tmp_path / "a1.npy", np.zeros((2, 3), np.uint8))
    img = OMEArrow(str(tmp_path / "a[1].npy"))
    assert "stack" not in img.info() and img.to_numpy().sum() == 6


# -- writers ----------------------------------------------------------------------------------


def test_write_dataset_and_export_take_a_stack(tmp_path: Path) -> None:
    arrs = planes(tmp_path, 5, dtype="uint16")
    img = OMEArrow.scan(str(tmp_path / "plane_*.npy"))
    write_dataset([img], tmp_path / "out.ome.parquet")
    img.export("parquet", tmp_path / "x.parquet", layout="record")
    for out in ("out.ome.parquet", "x.parquet"):
        np.testing.assert_array_equal(OMEArrow(tmp_path / out).tensor_view(layout="ZYX").to_numpy(), np.stack(arrs))


def test_convert_cli_takes_a_quoted_pattern(tmp_path: Path) -> None:
    from ome_arrow_core.cli import main

    arrs = planes(tmp_path, 4, name="s_z{}.npy")
    out = tmp_path / "c.ome.parquet"
    assert main(["convert", str(tmp_path / "s_z<0-3>.npy"), "-o", str(out), "-q"]) == 0
    np.testing.assert_array_equal(OMEArrow(out).tensor_view(layout="ZYX").to_numpy(), np.stack(arrs))


@pytest.mark.parametrize("writer", ["write_dataset", "export"])
def test_writers_read_a_large_stack_one_plane_band_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """Over the writer's band size, each read the writer makes lands in one file (here: bands of one plane);
    export("parquet") streams as write_dataset does, and keeps the image's id."""
    arrs = planes(tmp_path, 6, shape=(16, 16))
    monkeypatch.setattr("ome_arrow_core.typed_chunk.packing.BAND_BYTES", 16 * 16 * 2)
    img = OMEArrow.scan(str(tmp_path / "plane_*.npy"))
    source = img.source
    assert isinstance(source, StackSource)
    seen: list[tuple[int, ...]] = []
    read = source.read

    def spy(sel: Selection) -> np.ndarray:
        seen.append(sel.shape)
        return read(sel)

    monkeypatch.setattr(source, "read", spy)
    out = tmp_path / "out.ome.parquet"
    if writer == "export":
        img.export("parquet", out, chunk_shape=(1, 8, 8))
    else:
        write_dataset([img], out, chunk_shape=(1, 8, 8))
    assert seen == [(1, 1, 1, 16, 16)] * 6 and source.files_read == 6
    back = OMEArrow(out)
    if writer == "export":
        assert back.meta.id == img.meta.id
    np.testing.assert_array_equal(back.tensor_view(layout="ZYX").to_numpy(), np.stack(arrs))


def test_unpadded_range_gap_says_how_to_pad(tmp_path: Path) -> None:
    for i in range(1, 11):
        np.save(tmp_path / f"t{i:02d}.npy", np.zeros((2, 2), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"t1\.npy' \(T=0\).*write <01-10> for padded names"):
        OMEArrow.scan(str(tmp_path / "t<1-10>.npy"))
    assert OMEArrow.scan(str(tmp_path / "t<01-10>.npy")).shape == (10, 1, 1, 2, 2)


def test_a_scanned_stack_pickles_and_reads_in_another_process(tmp_path: Path) -> None:
    import pickle
    import subprocess
    import sys

    arrs = planes(tmp_path, 3)
    img = OMEArrow.scan(str(tmp_path / "plane_*.npy"))
    blob = pickle.dumps(img.source)
    code = (
        "import pickle, sys, numpy as np; from ome_arrow_core.selection import Selection; "
        "src = pickle.loads(sys.stdin.buffer.read()); "
        "sys.stdout.buffer.write(src.read(Selection.full(src.meta.sizes)).tobytes())"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, check=True).stdout
    assert out == np.stack(arrs).tobytes()
    clone = pickle.loads(blob)
    np.save(tmp_path / "plane_1.npy", np.zeros((6, 8), np.uint16))
    with pytest.raises(SchemaError, match=r"plane_1\.npy"):
        clone.read(Selection.full(clone.meta.sizes))
