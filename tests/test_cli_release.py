"""The command line as a new user meets it: --version, info on datasets and tables, a closed pipe,
plugins --explain, CUDA exporters without a GPU. Every test runs the real CLI."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import ome_arrow_core
from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.cli import BROKEN_PIPE, main
from ome_arrow_core.cuda_probe import cuda_devices

DATA = Path(__file__).resolve().parent / "data"
TIFF = DATA / "ome-artificial" / "z-series.ome.tiff"
TABLE = DATA / "reference" / "oa010_table_two_rows.parquet"


def cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ome_arrow_core.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plate") / "plate.ome.parquet"
    images = [np.zeros((2, 8, 8), np.uint16), np.ones((3, 4, 6), np.float32), np.full((1, 5, 5), 7, np.uint8)]
    return write_dataset(
        images,
        out,
        dim_order="CYX",
        metadata={"well": ["A01", "B02", "C03"]},
        image_ids=["a", "b", "c"],
        progress=False,
    )


def test_version_is_the_installed_distributions() -> None:
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.split()[:2] == ["ome-arrow-core", ome_arrow_core.__version__]
    assert md.version("ome-arrow-core") == ome_arrow_core.__version__


def test_info_lists_the_images_of_a_dataset(plate: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(plate)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{plate}: 3 images; pick one with --row N or --image ID"
    assert "storage=parquet typed-chunk dataset" in lines[1]
    assert lines[2].split() == ["row", "id", "shape", "TZCYX", "dtype", "well"]
    assert [line.split() for line in lines[3:]] == [
        ["0", "a", "1x1x2x8x8", "uint16", "A01"],
        ["1", "b", "1x1x3x4x6", "float32", "B02"],
        ["2", "c", "1x1x1x5x5", "uint8", "C03"],
    ]
    assert main(["info", str(plate), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["metadata_columns"] == ["well"] and listing["images_in_file"] == 3
    assert listing["images"][1] == {
        "row": 1,
        "id": "b",
        "shape": {"T": 1, "Z": 1, "C": 3, "Y": 4, "X": 6},
        "dtype": "float32",
        "well": "B02",
    }


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_info_names_the_compression_as_compression_takes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], compression: str | None
) -> None:
    """A dataset's info said Parquet's own codec name (compression=UNCOMPRESSED, ZSTD) where its JSON listing, an
    image's info and the images table say "none" and "zstd", the names ``compression=`` takes."""
    out = write_dataset([np.zeros((2, 8, 8), np.uint16)] * 2, tmp_path / "p.ome.parquet", dim_order="CYX",
                        compression=compression, progress=False)  # fmt: skip
    name = compression or "none"
    assert main(["info", str(out)]) == 0
    assert f"  compression={name}  " in capsys.readouterr().out.splitlines()[1]
    assert main(["info", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compression"] == name
    assert main(["info", str(out), "--row", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["compression"] == name
    assert OMEArrowDataset.scan(out).table.column("compression").to_pylist() == [name, name]


def test_info_row_and_image_pick_one(plate: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--row", "1"], ["--image", "b"]):
        assert main(["info", str(plate), "--json", *argv]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["id"] == "b" and info["dtype"] == "float32" and info["well"] == "B02"
        assert info["shape"] == {"T": 1, "Z": 1, "C": 3, "Y": 4, "X": 6}
    assert main(["info", str(plate), "--image", "c"]) == 0
    out = capsys.readouterr().out
    assert "shape     T=1  Z=1  C=1  Y=5  X=5" in out and "well      C03" in out
    proc = cli("info", str(plate), "--row", "3")
    assert proc.returncode == 1 and proc.stderr == (
        f"error: --row 3 is out of range: {plate} holds 3 image(s) (rows 0 to 2)\n"
    )
    proc = cli("info", str(plate), "--image", "z")
    assert proc.returncode == 1 and proc.stderr == f"error: --image 'z' is not in {plate}; its image ids: a, b, c\n"


def test_info_on_a_table_of_records_and_its_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(TABLE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:4] for line in lines[3:]] == [
        ["0", "ref-image", "1x3x2x32x48", "uint16"],
        ["1", "ref-image-1", "1x3x2x32x48", "uint16"],
    ]
    image = pq.read_table(TABLE).column("image")
    two = tmp_path / "two.parquet"
    pq.write_table(pa.table({"site": [0, 1], "raw": image, "mask": image}), two)
    proc = cli("info", str(two))
    assert proc.returncode == 1
    assert proc.stderr == f"error: {two}: several OME-Arrow columns ['raw', 'mask']; pick one with --column NAME\n"
    assert main(["info", str(two), "--column", "mask", "--row", "1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["id"] == "ref-image-1" and info["column"] == "mask" and info["site"] == 1
    assert main(["info", str(TIFF), "--json"]) == 0  # one image: the description, as before
    assert json.loads(capsys.readouterr().out)["shape"]["Z"] == 5


@pytest.mark.parametrize("buffered", [True, False])
def test_a_closed_pipe_ends_quietly(plate: Path, buffered: bool) -> None:
    env = {k: v for k, v in os.environ.items() if not (buffered and k == "PYTHONUNBUFFERED")}
    for argv in (["info", str(plate)], ["plugins", "--explain", str(TIFF)]):
        with subprocess.Popen(
            [sys.executable, "-m", "ome_arrow_core.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()  # the reader is gone before the command writes a byte
            err = proc.stderr.read()
            assert proc.wait() == BROKEN_PIPE, err
            assert err == ""


def test_head_reads_the_first_line_and_nothing_complains(plate: Path) -> None:
    cmd = f"{sys.executable} -m ome_arrow_core.cli info {plate} | head -1"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout == f"{plate}: 3 images; pick one with --row N or --image ID\n"
    assert proc.stderr == ""


def test_explain_a_path_names_the_chosen_reader_and_why_not_the_others() -> None:
    proc = cli("plugins", "--explain", str(TIFF), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    chosen = [c for c in report["candidates"] if c["chosen"]]
    assert {(c["kind"], c["plugin"]) for c in chosen} == {("reader", "tiff"), ("writer", "tiff")}
    parquet = next(c for c in report["candidates"] if c["kind"] == "reader" and c["plugin"] == "parquet")
    assert parquet["reason"] == "does not accept it (suffixes: .parquet .pq .ome-arrow)"
    text = cli("plugins", "--explain", "x.vortex").stdout.splitlines()
    assert text[1] == "  reader: vortex/vortex"
    assert "    * vortex/vortex (priority 0): accepts it and comes first" in text


def test_explain_a_blocked_backend_and_a_typo(tmp_path: Path) -> None:
    proc = cli(
        "plugins", "--explain", str(TIFF), env={"OME_ARROW_CORE_BLOCK_PLUGINS": "tiff,bioio,vortx"}
    )  # the bioio bridge would read TIFF
    assert proc.returncode == 0
    assert "  reader: none can handle it" in proc.stdout.splitlines()
    blocked = "    - tiff/tiff (not loaded): would handle it, but is blocked by OME_ARROW_CORE_BLOCK_PLUGINS"
    assert blocked in proc.stdout.splitlines()
    assert proc.stderr.startswith("warning: OME_ARROW_CORE_BLOCK_PLUGINS names 'vortx', which match no plugin")
    assert "Traceback" not in proc.stderr and "registry.py" not in proc.stderr


def test_explain_priorities_formats_and_types() -> None:
    lines = cli("plugins", "--explain", "numpy.ndarray").stdout.splitlines()
    assert lines[1] == "  ingester: numpy/numpy"
    assert (
        "    - numpy/array-like (priority -100): also accepts it, but numpy/numpy has a higher priority (10)" in lines
    )
    lines = cli("plugins", "--explain", "ome-tiff").stdout.splitlines()
    assert lines[1] == "  writer: tiff/ome-tiff"
    lines = cli("plugins", "--explain", "cpu").stdout.splitlines()
    assert "  exporter mode=numpy: cpu/numpy" in lines


@pytest.mark.skipif(cuda_devices()[0] > 0, reason="a CUDA device is present")
def test_cuda_exporters_are_unavailable_without_a_gpu() -> None:
    proc = cli("plugins", "--json")
    rows = {(r["plugin"], r["name"]): r for r in json.loads(proc.stdout)}
    why = cuda_devices()[1]
    for key in (("torch", "torch-cuda"), ("jax", "jax-cuda")):
        assert rows[key]["available"] is False
        assert rows[key]["status"] == f"unavailable: no CUDA device ({why})"
    assert rows[("torch", "torch")]["available"] is True  # the CPU exporters are not touched
    lines = cli("plugins", "--explain", "cuda").stdout.splitlines()
    assert "  exporter mode=torch: none can handle it" in lines
    assert f"    - torch/torch-cuda (priority 0): no CUDA device ({why})" in lines


def test_cuda_devices_respects_cuda_visible_devices() -> None:
    code = "from ome_arrow_core.cuda_probe import cuda_devices; print(cuda_devices()[0])"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "0"


def _on_a_terminal(code: str) -> tuple[int, str]:
    """Run ``code`` in a child whose stderr is a terminal (a pty); its exit code and what stderr showed."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=follower) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        os.close(leader)
        return proc.wait(), b"".join(chunks).decode(errors="replace")


@pytest.mark.parametrize("tqdm", [True, False])
def test_convert_progress_counts_pixel_bytes_on_a_terminal_only(tmp_path: Path, tqdm: bool) -> None:
    src = ome_arrow_core.OMEArrow.scan(TIFF)
    total = int(np.prod(src.shape)) * src.dtype.itemsize
    out = tmp_path / "z.ome.parquet"
    block = "" if tqdm else "sys.modules['tqdm'] = None; "
    code = (
        f"import sys; {block}from ome_arrow_core.cli import main; "
        f"sys.exit(main(['convert', {str(TIFF)!r}, {str(TIFF)!r}, '-o', {str(out)!r}]))"
    )
    rc, shown = _on_a_terminal(code)
    assert rc == 0, shown
    if tqdm:
        kib = f"{2 * total / 1024:.0f}k"  # tqdm's 3 significant digits of KiB, for this size
        assert "convert: 100%" in shown and f"{kib}/{kib}" in shown and "convert:   0%|" in shown, shown
    else:
        assert f"convert: 100.0% {2 * total / 2**20:.1f} MiB of {2 * total / 2**20:.1f} MiB" in shown, shown
        assert "\r\033[Kconvert:  50.0%" in shown  # the first image counted once it was written
    proc = cli("convert", str(TIFF), "-o", str(tmp_path / "quiet.ome.parquet"))  # not a terminal: no bar
    assert proc.returncode == 0 and proc.stderr == ""


def test_input_errors_come_before_the_progress_line(tmp_path: Path) -> None:
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    out = tmp_path / "o.ome.parquet"
    code = (
        "import sys; sys.modules['tqdm'] = None; from ome_arrow_core.cli import main; "
        f"sys.exit(main(['convert', {str(tmp_path / 'bad.npy')!r}, {str(TIFF)!r}, '-o', {str(out)!r}]))"
    )
    rc, shown = _on_a_terminal(code)
    assert rc == 1
    assert shown.index("bad.npy") < shown.index("convert:")
    assert shown.splitlines()[0].startswith("error: ")


def test_explain_in_a_host_registry_and_without_the_backend(tmp_path: Path) -> None:
    from ome_arrow_core import Registry
    from ome_arrow_core.plugin_report import explain

    bare = explain(str(TIFF), Registry(autoload=False))  # built-ins only: the TIFF backend is not registered
    assert bare.chosen("reader") is None
    assert [c.reason for c in bare.candidates if c.plugin == "tiff"] == [
        "would handle it; ome-arrow-tiff is installed but not registered in this registry"
    ]
    # not installed at all: scripts/check_install.sh checks the install command in a venv with the core alone


def test_convert_counts_an_image_once_the_writer_has_taken_it(tmp_path: Path) -> None:
    from ome_arrow_core import OMEArrow
    from ome_arrow_core.cli.convert import counted, pixel_bytes
    from ome_arrow_core.progress import Progress

    images = [OMEArrow(np.zeros((4, 8), np.uint16)), OMEArrow(np.zeros((2, 8), np.float64))]
    bar = Progress(sum(pixel_bytes(im) for im in images), enabled=False)
    stream = counted(images, bar)
    assert next(stream) is images[0] and bar.done == 0  # handed to the writer, not yet written
    assert next(stream) is images[1] and bar.done == 64  # the writer asked for more: the first was read
    assert list(stream) == [] and bar.done == 64 + 128
