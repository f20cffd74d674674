"""An unknown physical size is None (never a guessed 1 µm) through records, datasets and info();
stated sizes keep their values; a lying size field is our error naming the file and the field.
Also the one channel codec (``channel_to_dict``/``channel_from_dict``) every format uses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from table_digests import without_table_digests

from ome_arrow_core import Channel, ImageMeta, OMEArrow, OMEArrowDataset, SchemaError
from ome_arrow_core.plugin_api import DamagedFileError, channel_from_dict, channel_to_dict, physical_size_value
from ome_arrow_core.record.codec import pixels_to_record

PIXELS = np.arange(2 * 3 * 8 * 8, dtype=np.uint16).reshape(1, 3, 2, 8, 8)  # TZCYX
UNKNOWN = {"X": None, "Y": None, "Z": None}


def record_file(path: Path, **pixels_meta: Any) -> Path:
    """A one-row record file written with pyarrow, with ``pixels_meta`` fields replaced (types inferred)."""
    meta = ImageMeta(sizes={"T": 1, "Z": 3, "C": 2, "Y": 8, "X": 8}, dtype=np.uint16)
    rec = pixels_to_record(meta, PIXELS).to_pylist()[0]
    pm = {k: v for k, v in rec["pixels_meta"].items() if k not in pixels_meta or pixels_meta[k] is not ...}
    pm.update({k: v for k, v in pixels_meta.items() if v is not ...})
    rec["pixels_meta"] = pm
    pq.write_table(pa.table({"ome_arrow": pa.array([rec])}), path)
    return path


def test_an_image_from_an_array_has_unknown_sizes_everywhere(tmp_path: Path) -> None:
    img = OMEArrow(PIXELS, dim_order="TZCYX")
    assert img.meta.physical_size == UNKNOWN and img.info()["physical_size"] == UNKNOWN
    img.export("parquet", tmp_path / "r.parquet", layout="record")
    pm = pq.read_table(tmp_path / "r.parquet").column("ome_arrow")[0]["pixels_meta"].as_py()
    assert [pm[f"physical_size_{a}"] for a in "xyz"] == [None, None, None]  # stored as null, not 1.0
    assert OMEArrow(tmp_path / "r.parquet").meta.physical_size == UNKNOWN
    img.export("parquet", tmp_path / "d.ome.parquet")
    images = pq.read_table(tmp_path / "d.ome.parquet" / "images.parquet")
    assert images.column("physical_size_x").to_pylist() == [None]
    assert OMEArrowDataset.scan(tmp_path / "d.ome.parquet")[0].meta.physical_size == UNKNOWN


def test_stated_sizes_and_older_files_saying_one_keep_their_values(tmp_path: Path) -> None:
    old = record_file(tmp_path / "old.parquet", physical_size_x=1.0, physical_size_y=1.0, physical_size_z=1.0)
    assert OMEArrow(old).meta.physical_size == {"X": 1.0, "Y": 1.0, "Z": 1.0}  # they said 1.0
    part = record_file(tmp_path / "part.parquet", physical_size_x=0.25, physical_size_y=0.5, physical_size_z=None)
    img = OMEArrow(part)
    assert img.meta.physical_size == {"X": 0.25, "Y": 0.5, "Z": None}
    img.export("parquet", tmp_path / "again.ome.parquet")
    assert OMEArrowDataset.scan(tmp_path / "again.ome.parquet")[0].meta.physical_size == {
        "X": 0.25,
        "Y": 0.5,
        "Z": None,
    }


def test_absent_size_fields_read_as_unknown(tmp_path: Path) -> None:
    path = record_file(tmp_path / "bare.parquet", **{f"physical_size_{a}": ... for a in "xyz"})
    assert "physical_size_x" not in pq.read_schema(path).field("ome_arrow").type.field("pixels_meta").type.names
    assert OMEArrow(path).meta.physical_size == UNKNOWN


@pytest.mark.parametrize("lie", [-0.5, 0.0, math.nan, math.inf, "0.5"])
def test_a_lying_record_size_names_file_and_field(tmp_path: Path, lie: object) -> None:
    path = record_file(tmp_path / "lie.parquet", physical_size_y=lie)
    with pytest.raises(DamagedFileError, match=r"lie\.parquet.*pixels_meta\.physical_size_y"):
        OMEArrow.scan(path)


@pytest.mark.parametrize("lie", [-2.0, math.nan])
def test_a_lying_images_table_size_names_dataset_and_field(tmp_path: Path, lie: float) -> None:
    root = tmp_path / "d.ome.parquet"
    OMEArrow(PIXELS, dim_order="TZCYX").export("parquet", root)
    table = pq.read_table(root / "images.parquet")
    col = table.schema.get_field_index("physical_size_z")
    table = table.set_column(col, "physical_size_z", pa.array([lie], pa.float64()))
    pq.write_table(table, root / "images.parquet")
    without_table_digests(root)  # the table checksum would refuse the rewrite first
    with pytest.raises(DamagedFileError, match=r"d\.ome\.parquet.*physical_size_z"):
        OMEArrowDataset.scan(root)[0].meta  # noqa: B018


def test_physical_size_value_accepts_positive_numbers_only() -> None:
    assert physical_size_value(None, "f") is None
    assert physical_size_value(np.float32(0.5), "f") == 0.5 and physical_size_value(2, "f") == 2.0
    for bad in (True, "1", -1, 0, math.nan, -math.inf, [1.0]):
        with pytest.raises(SchemaError, match="field"):
            physical_size_value(bad, "field")
    with pytest.raises(SchemaError, match=r"physical_size\['Y'\]"):
        ImageMeta(sizes={"Y": 2, "X": 2}, dtype=np.uint8, physical_size={"Y": -1.0})


# -- the one channel codec ---------------------------------------------------------------------
channels = st.builds(
    Channel,
    id=st.text(min_size=1, max_size=8),
    name=st.text(max_size=8),
    emission_um=st.none() | st.floats(0.1, 2.0),
    excitation_um=st.none() | st.floats(0.1, 2.0),
    illumination=st.sampled_from(["Unknown", "Epifluorescence", "Transmitted"]),
    color_rgba=st.none() | st.integers(0, 2**32 - 1),
)


@settings(max_examples=60, deadline=None)
@given(channels)
def test_channel_codec_round_trips(ch: Channel) -> None:
    assert channel_from_dict(channel_to_dict(ch), 0) == ch


@settings(max_examples=15, deadline=None)
@given(st.lists(channels, min_size=2, max_size=2))
def test_channels_round_trip_through_records_and_datasets(
    tmp_path_factory: pytest.TempPathFactory, chans: list[Channel]
) -> None:
    tmp = tmp_path_factory.mktemp("chans")
    meta = ImageMeta(sizes={"T": 1, "Z": 3, "C": 2, "Y": 8, "X": 8}, dtype=np.uint16, channels=chans)
    img = OMEArrow(pixels_to_record(meta, PIXELS))
    img.export("parquet", tmp / "r.parquet", layout="record")
    img.export("parquet", tmp / "d.ome.parquet")
    for got in (
        OMEArrow(tmp / "r.parquet").meta.channels,
        OMEArrowDataset.scan(tmp / "d.ome.parquet")[0].meta.channels,
    ):
        assert [c.id for c in got] == [c.id for c in chans] and [c.color_rgba for c in got] == [
            c.color_rgba for c in chans
        ]
        for a, b in zip(got, chans, strict=True):  # record wavelengths are float32
            assert (a.emission_um is None) == (b.emission_um is None)
            assert a.emission_um is None or a.emission_um == pytest.approx(b.emission_um, rel=1e-6)


def test_channel_codec_defaults_and_refusals() -> None:
    assert channel_from_dict({}, 3) == Channel(id="ch-3")
    for stored, field in [
        ({"emission_um": "488"}, "emission_um"),
        ({"color_rgba": 1.5}, "color_rgba"),
        ({"color_rgba": -1}, "color_rgba"),
        ({"excitation_um": True}, "excitation_um"),
    ]:
        with pytest.raises(SchemaError, match=rf"where\[1\]\.{field}"):
            channel_from_dict(stored, 1, "where")
    with pytest.raises(SchemaError, match=r"where\[0\] is str"):
        channel_from_dict("DAPI", 0, "where")
