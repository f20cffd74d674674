"""Writing OME-Zarr (ome-arrow-zarr): round trips, pyramids, and what independent readers see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr", reason="needs zarr (pip install -e backends/zarr)")
pytest.importorskip("ome_arrow_zarr", reason="needs ome-arrow-zarr (pip install -e backends/zarr)")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ome_arrow_core import Channel, ImageMeta, OMEArrow
from ome_arrow_core.plugin_api import ArgumentError, UnsafeOverwriteError

THIRD_PARTY_WARNINGS = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning", "ignore::RuntimeWarning"
)
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "bool"]


def image(shape: tuple[int, int, int, int, int] = (2, 3, 2, 40, 36), dtype: str = "uint16") -> OMEArrow:
    rng = np.random.default_rng(7)
    data = rng.integers(0, 4000, shape).astype(dtype)
    img = OMEArrow(data, "TZCYX", name="cells")
    chans = [
        Channel(id="ch-dapi", name="DAPI", emission_um=0.461, excitation_um=0.358, color_rgba=0x0000FFFF),
        Channel(id="ch-gfp", name="GFP", emission_um=0.509, color_rgba=0x00FF00FF),
    ][: shape[2]]
    img.source.meta = ImageMeta(
        sizes=img.meta.sizes,
        dtype=img.dtype,
        id="img-cells",
        name="cells",
        physical_size={"X": 0.2, "Y": 0.3, "Z": 1.5},
        physical_unit={"X": "µm", "Y": "µm", "Z": "nm"},
        channels=chans,
        acquisition_datetime="2026-01-02T03:04:05",
    )
    return img


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arr=hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=5, max_dims=5, min_side=1, max_side=7)),
    version=st.sampled_from(["0.4", "0.5"]),
    levels=st.integers(1, 3),
)
def test_every_dtype_round_trips_bit_exact(
    tmp_path_factory: pytest.TempPathFactory, arr: np.ndarray, version: str, levels: int
) -> None:
    out = tmp_path_factory.mktemp("w") / "x.ome.zarr"
    OMEArrow(arr, "TZCYX").export("ome-zarr", out, version=version, levels=levels, chunk_shape=(2, 3, 4))
    back = OMEArrow.scan(out)
    assert back.dtype == arr.dtype
    assert back.to_numpy(layout="TZCYX").tobytes() == np.ascontiguousarray(arr).tobytes()
    top = OMEArrow.scan(out, level=levels - 1)
    f = 2 ** (levels - 1)
    assert top.to_numpy(layout="TZCYX").tobytes() == np.ascontiguousarray(arr[..., ::f, ::f]).tobytes()


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_metadata_and_chunking_round_trip(tmp_path: Path, version: str) -> None:
    img = image()
    out = img.export("ome-zarr", tmp_path / "x.ome.zarr", version=version, chunk_shape=(1, 16, 32), levels=2)
    back = OMEArrow.scan(out)
    assert back.meta == ImageMeta(**{**img.meta.__dict__, "chunk_shape": (1, 16, 32)})
    info = back.info()
    assert info["ngff_version"] == version and info["zarr_format"] == (2 if version == "0.4" else 3)
    assert info["chunks"] == [1, 1, 1, 16, 32] and info["downscaling"] == "nearest"
    assert info["levels"][1]["scale"] == {"T": 1.0, "C": 1.0, "Z": 1.5, "Y": 0.6, "X": 0.4}
    doc = json.loads((out / ("zarr.json" if version == "0.5" else ".zattrs")).read_text())
    ngff = doc["attributes"]["ome"] if version == "0.5" else doc
    assert ngff["multiscales"][0]["axes"][2] == {"name": "z", "type": "space", "unit": "nanometer"}
    assert [c["label"] for c in ngff["omero"]["channels"]] == ["DAPI", "GFP"]


def test_lazy_image_is_written_one_time_point_at_a_time(tmp_path: Path) -> None:
    src = image((3, 2, 2, 32, 32)).export("ome-zarr", tmp_path / "a.ome.zarr")
    lazy = OMEArrow.scan(src)
    lazy.export("ome-zarr", tmp_path / "b.ome.zarr")
    assert lazy.source.chunks_read == 3 * 2 * 2  # every chunk once
    np.testing.assert_array_equal(OMEArrow(tmp_path / "b.ome.zarr").to_numpy(), OMEArrow(src).to_numpy())


@THIRD_PARTY_WARNINGS
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_bioio_ome_zarr_reads_what_we_write(tmp_path: Path, version: str) -> None:
    from bioio_ome_zarr import Reader

    img = image()
    out = img.export("ome-zarr", tmp_path / "x.ome.zarr", version=version, levels=2)
    r = Reader(out)
    assert r.dims.order == "TCZYX"
    np.testing.assert_array_equal(np.asarray(r.data), img.to_numpy())
    assert r.channel_names == ["DAPI", "GFP"]
    assert (r.physical_pixel_sizes.X, r.physical_pixel_sizes.Y, r.physical_pixel_sizes.Z) == (0.2, 0.3, 1.5)
    assert list(r.resolution_levels) == [0, 1]
    r.set_resolution_level(1)
    np.testing.assert_array_equal(np.asarray(r.data), img.to_numpy()[..., ::2, ::2])


@THIRD_PARTY_WARNINGS
@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_py_reads_what_we_write(tmp_path: Path, version: str) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    img = image()
    out = img.export("ome-zarr", tmp_path / "x.ome.zarr", version=version, levels=3)
    node = next(iter(Reader(parse_url(out))()))
    assert [a["name"] for a in node.metadata["axes"]] == list("tczyx")
    for k, level in enumerate(node.data):
        f = 2**k
        np.testing.assert_array_equal(np.asarray(level), img.to_numpy()[..., ::f, ::f])
        assert node.metadata["coordinateTransformations"][k] == [
            {"type": "scale", "scale": [1.0, 1.0, 1.5, 0.3 * f, 0.2 * f]}
        ]
    assert node.metadata["channel_names"] == ["DAPI", "GFP"]


def test_existing_directories_are_never_replaced(tmp_path: Path) -> None:
    out = image().export("ome-zarr", tmp_path / "x.ome.zarr")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(
        UnsafeOverwriteError, match="exists and this writer never replaces an output; nothing was changed"
    ):
        image((1, 1, 1, 8, 8)).export("ome-zarr", out)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    foreign = tmp_path / "mine.zarr"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(UnsafeOverwriteError):
        image().export("ome-zarr", foreign)
    assert (
        (foreign / "notes.txt").read_text() == "keep" and os.listdir(tmp_path) == ["mine.zarr", "x.ome.zarr"]
    ) or sorted(os.listdir(tmp_path)) == ["mine.zarr", "x.ome.zarr"]


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        ({"version": "0.6"}, "version='0.6'"),
        ({"levels": 0}, "levels=0"),
        ({"compression": "lz4"}, "compression"),
        ({"chunk_shape": (0, 1, 1)}, "chunk_shape"),
        ({"compression_level": 99}, "compression_level"),
    ],
)
def test_bad_arguments_are_argument_errors_and_write_nothing(
    tmp_path: Path, opts: dict[str, object], match: str
) -> None:
    with pytest.raises(ArgumentError, match=match):
        image().export("ome-zarr", tmp_path / "x.ome.zarr", **opts)
    assert os.listdir(tmp_path) == []


def test_failure_mid_write_leaves_nothing(tmp_path: Path) -> None:
    img = OMEArrow.scan(image((3, 1, 1, 16, 16)).export("ome-zarr", tmp_path / "src.ome.zarr"))
    (tmp_path / "src.ome.zarr" / "0" / "c" / "2" / "0" / "0" / "0" / "0").write_bytes(b"not zstd")
    with pytest.raises(Exception, match=r"src\.ome\.zarr \[0/c/2/0/0/0/0\]"):
        img.export("ome-zarr", tmp_path / "out.ome.zarr")
    assert sorted(os.listdir(tmp_path)) == ["src.ome.zarr"]


_KILLED_WRITER = """
import sys, numpy as np
from ome_arrow_core import OMEArrow
data = np.random.default_rng(0).integers(0, 60000, (40, 1, 1, 256, 256)).astype("uint16")
print("start", flush=True)
OMEArrow(data, "TZCYX").export("ome-zarr", sys.argv[1], chunk_shape=(1, 64, 64), compression=None)
"""


def test_kill_mid_write_leaves_the_previous_state(tmp_path: Path) -> None:
    out = tmp_path / "x.ome.zarr"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out)], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"start"
    for _ in range(2000):  # until the writer has put chunks into its temporary
        tmps = [p for p in tmp_path.iterdir() if ".ome-arrow-tmp." in p.name]
        if tmps and sum(1 for _ in tmps[0].rglob("*")) > 20:
            break
        proc.poll()
        assert proc.returncode is None, "the writer finished before it could be killed"
        import time

        time.sleep(0.005)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert not out.exists()  # nothing at the target: the previous state
    image((1, 1, 1, 8, 8)).export("ome-zarr", out)  # the next write removes the dead writer's temporary
    assert sorted(os.listdir(tmp_path)) == ["x.ome.zarr"]
    assert OMEArrow(out).shape == (1, 1, 1, 8, 8)


def test_cli_converts_to_and_from_ome_zarr(tmp_path: Path) -> None:
    src = image().export("parquet", tmp_path / "in.ome.parquet")
    cli = [sys.executable, "-m", "ome_arrow_core.cli"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [*cli, "convert", "-q", str(src), "-o", str(tmp_path / "x.ome.zarr")], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(OMEArrow(tmp_path / "x.ome.zarr").to_numpy(), image().to_numpy())
    run = subprocess.run(
        [*cli, "convert", "-q", str(tmp_path / "x.ome.zarr"), "-o", str(tmp_path / "y.ome.parquet")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(OMEArrow(tmp_path / "y.ome.parquet").to_numpy(), image().to_numpy())


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_tensorstore_reads_every_level_we_write(tmp_path: Path, version: str) -> None:
    ts = pytest.importorskip("tensorstore")
    img = image()
    out = img.export("ome-zarr", tmp_path / "x.ome.zarr", version=version, levels=2)
    for k in range(2):
        spec = {
            "driver": "zarr3" if version == "0.5" else "zarr",
            "kvstore": {"driver": "file", "path": str(out / str(k))},
        }
        got = ts.open(spec, read=True).result().read().result()
        np.testing.assert_array_equal(got, img.to_numpy()[..., :: 2**k, :: 2**k])


def test_write_dataset_reads_ome_zarr_inputs(tmp_path: Path) -> None:
    from ome_arrow_core import OMEArrowDataset, write_dataset

    a = image().export("ome-zarr", tmp_path / "a.ome.zarr")
    b = image((1, 1, 1, 20, 20), "uint8").export("ome-zarr", tmp_path / "b.ome.zarr", version="0.4")
    write_dataset([a, OMEArrow.scan(b)], tmp_path / "ds", progress=False)
    ds = OMEArrowDataset.scan(tmp_path / "ds")
    assert len(ds) == 2
    np.testing.assert_array_equal(ds[0].to_numpy(), OMEArrow(a).to_numpy())
    np.testing.assert_array_equal(ds[1].to_numpy(), OMEArrow(b).to_numpy())
    assert ds[0].meta.physical_size == image().meta.physical_size


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_channel_without_a_name_reads_back_without_one(tmp_path: Path, version: str) -> None:
    img = image((1, 1, 2, 8, 8))
    meta = img.source.meta
    img.source.meta = ImageMeta(
        sizes=meta.sizes,
        dtype=meta.dtype,
        id=meta.id,
        name=meta.name,
        channels=[Channel(id="Channel:0:0", name=""), Channel(id="Channel:0:1", name="GFP")],
    )
    out = tmp_path / "c.ome.zarr"
    img.export("ome-zarr", out, version=version)
    attrs = json.dumps(json.loads((out / ("zarr.json" if version == "0.5" else ".zattrs")).read_text()))
    assert '"label": "Channel:0:0"' in attrs  # viewers get a label: the channel's id
    got = OMEArrow(out).meta.channels
    assert [(c.id, c.name) for c in got] == [("Channel:0:0", ""), ("Channel:0:1", "GFP")]  # the name stays empty


def test_a_scanned_image_is_written_a_slab_of_chunks_at_a_time(tmp_path: Path) -> None:
    """Converting an image larger than memory must not read it whole: the writer reads one time point's chunk
    depth of planes at a time, as many as plane_blocks.BLOCK_BYTES holds (here made one: 2 x 16 planes of 256x256,
    so 1/16 of a time point, 1/32 of the image)."""
    from conversion_memory import peak_read_bytes, scanned_source

    src, arr = scanned_source(tmp_path)
    small = "import ome_arrow_core.plane_blocks as p; p.BLOCK_BYTES = 1 << 18"  # slabs of one chunk depth, not 32 MiB
    peak = peak_read_bytes(src, "ome-zarr", tmp_path / "out.ome.zarr", setup=small, chunk_shape=[1, 128, 128])
    assert peak < arr.nbytes // 8, (peak, arr.nbytes)
    np.testing.assert_array_equal(OMEArrow.scan(tmp_path / "out.ome.zarr").to_numpy(), arr)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_a_unit_ngff_cannot_name_reads_back_as_itself(tmp_path: Path, version: str) -> None:
    """OME's ``pixel`` has no NGFF (UDUNITS-2) name: the axis is written without one, and the unit is kept in our
    attributes (it read back as µm: 0.5 pixel became 0.5 µm); a named unit stays NGFF's."""
    img = OMEArrow(np.zeros((1, 1, 1, 8, 8), np.uint16), "TZCYX")
    img.source.meta = replace(
        img.meta, physical_size={"X": 0.5, "Y": 0.25, "Z": None}, physical_unit={"X": "pixel", "Y": "nm", "Z": "µm"}
    )
    out = img.export("ome-zarr", tmp_path / "x.ome.zarr", version=version)
    back = OMEArrow.scan(out).meta
    assert back.physical_size == {"X": 0.5, "Y": 0.25, "Z": None}
    assert back.physical_unit == {"X": "pixel", "Y": "nm", "Z": "µm"}
