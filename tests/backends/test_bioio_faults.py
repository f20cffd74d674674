"""Damaged files, unknown formats and bad arguments through the bioio bridge: our errors, never a foreign
traceback or wrong pixels; and without bioio the bridge lists itself as unavailable with the install command."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bioio", reason='needs bioio (pip install "ome-arrow-core[bioio]")')
pytest.importorskip("ome_arrow_bioio", reason="needs ome-arrow-bioio (pip install -e backends/bioio)")
pytest.importorskip("bioio_imageio", reason="needs bioio-imageio")
pytest.importorskip("bioio_tifffile", reason="needs bioio-tifffile")

from bioio_files import rgb, write_ome_tiff, write_png, write_tiff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.plugin_api import (
    ArgumentError,
    DamagedFileError,
    DTypeError,
    PluginError,
    SchemaError,
    SelectionError,
)

PNG = rgb((24, 31, 3), "uint8", seed=11)
STACK = rgb((6, 20, 22), "uint16", seed=12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.floats(0.0, 0.99))
def test_a_truncated_png_is_damaged_never_wrong_pixels(tmp_path_factory: pytest.TempPathFactory, keep: float) -> None:
    path = write_png(tmp_path_factory.mktemp("t") / "x.png", PNG)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DamagedFileError, match=r"x\.png.*damaged or not what its name says"):
        OMEArrow.scan(path).to_numpy()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keep=st.floats(0.05, 0.99))
def test_a_truncated_tiff_through_the_bridge_is_damaged_or_exact(
    tmp_path_factory: pytest.TempPathFactory, keep: float
) -> None:
    path = write_tiff(tmp_path_factory.mktemp("t") / "x.tif", STACK, "ZYX")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    try:
        got = OMEArrow.scan(path, format="bioio", reader="bioio-tifffile").to_numpy()
    except DamagedFileError as exc:
        assert str(path) in str(exc)
    else:  # pragma: no cover - a cut past the pixels (trailing metadata) may leave a readable file
        assert np.array_equal(got.reshape(STACK.shape), STACK)


def test_garbage_with_a_png_name_is_damaged(tmp_path: Path) -> None:
    path = tmp_path / "g.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(DamagedFileError, match=r"g\.png: no bioio reader could open it \(bioio-imageio: "):
        OMEArrow.scan(path)


def test_an_unknown_format_names_the_installed_readers(tmp_path: Path) -> None:
    path = tmp_path / "x.xyz"
    path.write_bytes(b"hello")
    with pytest.raises(
        PluginError,
        match=r"x\.xyz: no installed bioio reader plugin reads \.xyz\. Installed bioio "
        r"readers: .*bioio-imageio \(.*bioio-tifffile \(\.lsm \.tif \.tiff\)",
    ):
        OMEArrow.scan(path, format="bioio")
    with pytest.raises(PluginError, match=r"no plugin handles path .*x\.xyz"):
        OMEArrow.scan(path)


def test_a_known_format_without_its_plugin_names_the_plugin_to_install(tmp_path: Path) -> None:
    path = tmp_path / "x.czi"
    path.write_bytes(b"ZISRAWFILE" + bytes(100))
    if "bioio_czi" in sys.modules or _installed("bioio-czi"):
        pytest.skip("bioio-czi is installed here")
    with pytest.raises(
        PluginError,
        match=r"no installed bioio reader plugin reads \.czi; bioio-czi reads \.czi "
        r"files: pip install bioio-czi\. Installed bioio readers: ",
    ):
        OMEArrow.scan(path)


def _installed(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(dist)
    except PackageNotFoundError:
        return False
    return True


def test_a_dtype_we_cannot_store_is_a_dtype_error_naming_the_file(tmp_path: Path) -> None:
    path = write_tiff(tmp_path / "u64.tif", np.arange(2 * 4 * 4, dtype=np.uint64).reshape(2, 4, 4), "ZYX")
    with pytest.raises(DTypeError, match=r"u64\.tif \[scene Image:0\]: .*uint64"):
        OMEArrow.scan(path, format="bioio", reader="bioio-tifffile")


def test_bad_arguments_are_argument_and_selection_errors(tmp_path: Path) -> None:
    path = write_ome_tiff(tmp_path / "m.ome.tif", (STACK, {"axes": "ZYX"}), (STACK[:2], {"axes": "ZYX"}))
    with pytest.raises(
        ArgumentError, match="reader='bioio-nope' is not an installed bioio reader plugin; installed: .*bioio-imageio"
    ):
        OMEArrow.scan(path, format="bioio", reader="bioio-nope")
    with pytest.raises(SchemaError, match="column='x' does not apply"):
        OMEArrow.scan(path, format="bioio", column="x")
    with pytest.raises(SelectionError, match=r"scene 2 is out of range: .*m\.ome\.tif has 2 scenes"):
        OMEArrow.scan(path, format="bioio", scene=2)
    with pytest.raises(SelectionError, match="scene='Image:9' is not a scene of .*; its scenes: Image:0, Image:1"):
        OMEArrow.scan(path, format="bioio", scene="Image:9")
    with pytest.raises(ArgumentError, match="scene=1 and row=2 pick different scenes"):
        OMEArrow.scan(path, format="bioio", scene=1, row=2)
    with pytest.raises(ArgumentError, match="scene must be a scene index or a scene id"):
        OMEArrow.scan(path, format="bioio", scene=1.0)


def test_reader_warnings_are_kept_in_info_not_raised(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "w.tif"  # an ImageJ resolution without a unit: bioio-tifffile 1.3 warns it cannot parse it
    tifffile.imwrite(path, STACK, imagej=True, metadata={"axes": "ZYX"}, resolution=(2.0, 2.0))
    img = OMEArrow.scan(path, format="bioio", reader="bioio-tifffile")  # pytest turns escaped warnings into errors
    assert any("Could not parse tiff pixel size" in w for w in img.info()["reader_warnings"])
    assert np.array_equal(img.tensor_view(layout="ZYX").to_numpy(), STACK)


_WITHOUT_BIOIO = textwrap.dedent("""
    import json, sys
    sys.modules["bioio"] = None  # bioio cannot be imported (find_spec answers None), as when it is not installed
    from ome_arrow_core import OMEArrow, BackendUnavailableError, Registry
    from ome_arrow_core.plugin_report import listing
    rows = [r for r in listing(Registry()) if r.plugin == "bioio"]
    try:
        OMEArrow.scan(sys.argv[1])
    except BackendUnavailableError as exc:
        error = str(exc)
    print(json.dumps({"rows": [[r.kind, r.name, r.available, r.status] for r in rows], "error": error}))
""")


def test_without_bioio_the_bridge_is_listed_unavailable_with_the_install_command(tmp_path: Path) -> None:
    path = write_png(tmp_path / "x.png", PNG)
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_BIOIO, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rows"] == [["reader", "bioio", False, 'unavailable: pip install "ome-arrow-core[bioio]"']]
    assert 'install one with: pip install "ome-arrow-core[bioio]"' in out["error"]


def _aged(path: Path) -> Path:
    """``path`` with its modification time a second back (a rewrite now gets a new one, whatever the clock)."""
    import os

    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
    return path


@pytest.mark.parametrize("how", ["replaced", "in-place"])
def test_a_file_written_since_it_was_opened_raises_never_its_new_pixels_cast(tmp_path: Path, how: str) -> None:
    """bioio-tifffile reads the file again by name for each read: one replaced since by another image of the same
    shape (uint8 9s where float32 3.5s were opened) was read and its pixels cast to float32, silently."""
    import errno
    import os

    import tifffile

    from ome_arrow_core.plugin_api import StorageError

    path, other = tmp_path / "c.tif", tmp_path / "d.tif"
    tifffile.imwrite(path, np.full((2, 32, 48), 3.5, np.float32), photometric="minisblack", metadata={"axes": "ZYX"})
    img = OMEArrow.scan(_aged(path), format="bioio")
    assert img.source.plugin == "bioio-tifffile" and img.dtype == np.float32
    tifffile.imwrite(other, np.full((2, 32, 48), 9, np.uint8), photometric="minisblack", metadata={"axes": "ZYX"})
    if how == "replaced":
        os.replace(other, path)
    else:
        path.write_bytes(other.read_bytes())
    with pytest.raises(StorageError, match=r"c\.tif .*written or replaced after it was opened") as err:
        img.to_numpy()
    assert err.value.errno == errno.ESTALE
    assert np.array_equal(OMEArrow.scan(path, format="bioio").to_numpy()[0, 0], np.full((2, 32, 48), 9, np.uint8))


def test_pixels_of_another_dtype_than_declared_are_refused_never_cast(tmp_path: Path) -> None:
    """A rewrite the file's version does not show (same size, its modification time put back) with another dtype:
    what the reader returns is refused, not cast to the dtype declared when the file was opened."""
    import os

    import tifffile

    from ome_arrow_core import OMEArrowError

    path, other = tmp_path / "c.tif", tmp_path / "d.tif"
    tifffile.imwrite(path, np.full((2, 32, 48), 3.5, np.float32), photometric="minisblack", metadata={"axes": "ZYX"})
    img = OMEArrow.scan(path, format="bioio")
    st = os.stat(path)
    tifffile.imwrite(other, np.full((2, 32, 48), 9, np.uint8), photometric="minisblack", metadata={"axes": "ZYX"})
    blob = other.read_bytes()
    with open(path, "r+b") as f:  # same inode and size: the new file's bytes, zeros after them
        f.write(blob + bytes(st.st_size - len(blob)))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(OMEArrowError, match=r"returned uint8 pixels, but declared float32"):
        img.to_numpy()
