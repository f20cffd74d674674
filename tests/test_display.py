"""Thumbnails: max projection, channel colours, auto-contrast, strided reads, PNG bytes and notebook reprs."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from png_support import decode_png

from ome_arrow_core import OMEArrow, write_dataset
from ome_arrow_core.display import PERCENTILES, channel_colors, default_colors, encode_png, render, thumbnail_png
from ome_arrow_core.display.contrast import scale
from ome_arrow_core.display.rendering import fit
from ome_arrow_core.display.subjects import canonical
from ome_arrow_core.errors import ArgumentError, DamagedFileError, OMEArrowError, SelectionError
from ome_arrow_core.meta import Channel
from ome_arrow_core.selection import Selection
from ome_arrow_core.sources import ArraySource

RED, GREEN, BLUE, MAGENTA = 0xFF0000FF, 0x00FF00FF, 0x0000FFFF, 0xFF00FFFF
render_module = importlib.import_module("ome_arrow_core.display.rendering")


def colored(arr: np.ndarray, dim_order: str, colors: list[int | None]) -> OMEArrow:
    """An image of ``arr`` whose channels carry ``colors`` (OME 0xRRGGBBAA) in its metadata."""
    record = OMEArrow(arr, dim_order).export("dict")
    for ch, rgba in zip(record["pixels_meta"]["channels"], colors, strict=True):
        ch["color_rgba"] = rgba
    return OMEArrow(record)


class RecordingSource(ArraySource):
    """An in-memory source that records every selection read from it."""

    def __init__(self, pixels: np.ndarray, depth: int = 1) -> None:
        from ome_arrow_core.meta import ImageMeta

        sizes = dict(zip("TZCYX", pixels.shape))
        super().__init__(ImageMeta(sizes=sizes, dtype=pixels.dtype, chunk_shape=(depth, 8, 8)), pixels)
        self.reads: list[Selection] = []

    def read(self, sel: Selection) -> np.ndarray:
        self.reads.append(sel)
        return super().read(sel)


# -- PNG ------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), s=st.sampled_from([None, 1, 2, 3, 4]), seed=st.integers(0, 99))
def test_png_round_trips_every_sample_count(h: int, w: int, s: int | None, seed: int) -> None:
    shape = (h, w) if s is None else (h, w, s)
    arr = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    back = decode_png(encode_png(arr))
    np.testing.assert_array_equal(back, arr.reshape(h, w, s or 1))


def test_png_is_read_by_pil_too() -> None:
    image = pytest.importorskip("PIL.Image")
    import io

    arr = np.random.default_rng(1).integers(0, 256, (7, 11, 3), dtype=np.uint8)
    with image.open(io.BytesIO(encode_png(arr))) as im:
        assert im.mode == "RGB" and im.size == (11, 7)
        np.testing.assert_array_equal(np.asarray(im), arr)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4), np.uint16), np.zeros((0, 4), np.uint8), np.zeros((2, 2, 5), np.uint8), np.zeros(4, np.uint8)],
)
def test_png_refuses_what_it_cannot_encode(bad: np.ndarray) -> None:
    with pytest.raises(ArgumentError, match="uint8"):
        encode_png(bad)


# -- colours and contrast -------------------------------------------------------------------------
def test_default_colours() -> None:
    assert default_colors(1) == [(1.0, 1.0, 1.0)]
    assert default_colors(2) == [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0)]
    assert default_colors(3) == [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    assert len(default_colors(9)) == 9 and default_colors(9)[7] == (1.0, 0.0, 0.0)
    mixed = channel_colors([Channel("a", color_rgba=0x80402000), Channel("b")])
    np.testing.assert_allclose(mixed, [[128 / 255, 64 / 255, 32 / 255], [1.0, 0.0, 1.0]], rtol=1e-6)


def test_contrast_ignores_outliers_and_handles_constants_and_non_finite() -> None:
    ramp = np.arange(10_000, dtype=np.float64).reshape(100, 100)
    ramp[0, 0] = 1e12  # one hot pixel must not set the range
    out = scale(ramp)
    assert out.dtype == np.float32 and out.min() == 0.0 and out.max() == 1.0
    assert 0.45 < out[50, 0] < 0.55
    assert not scale(np.zeros((4, 4), np.uint16)).any()
    assert scale(np.full((4, 4), 7, np.int16)).all()
    assert not scale(np.full((4, 4), -3.0)).any()
    weird = np.array([[np.nan, np.inf], [-np.inf, 2.0], [1.0, 3.0]])
    got = scale(weird)
    assert np.isfinite(got).all() and got[0, 0] == 0 and got[0, 1] == 1 and got[1, 0] == 0 and got[2, 1] == 1
    assert scale(np.array([[np.nan, np.inf]])).tolist() == [[0.0, 1.0]]
    assert PERCENTILES == (0.1, 99.9)


def test_sparse_bright_pixels_still_show() -> None:
    plane = np.zeros((100, 100), np.uint16)
    plane[3, 4] = 500  # 1 pixel in 10 000: both percentiles are 0
    out = scale(plane)
    assert out[3, 4] == 1.0 and out.sum() == 1.0


# -- rendering ------------------------------------------------------------------------------------
def test_pure_red_channel_renders_red() -> None:
    arr = np.zeros((1, 16, 16), np.uint16)
    arr[0, 4:12, 4:12] = 1000
    png = colored(arr, "CYX", [RED])._repr_png_()
    pic = decode_png(png)
    assert pic.shape == (16, 16, 3)
    assert (pic[6, 6] == [255, 0, 0]).all() and (pic[0, 0] == 0).all()
    assert (pic[..., 1:] == 0).all()


def test_stored_colours_are_used_per_channel() -> None:
    arr = np.zeros((3, 12, 12), np.uint8)
    arr[0, :4] = 200
    arr[1, 4:8] = 200
    arr[2, 8:] = 200
    pic = decode_png(colored(arr, "CYX", [BLUE, MAGENTA, GREEN])._repr_png_())
    assert (pic[1, 1] == [0, 0, 255]).all() and (pic[5, 5] == [255, 0, 255]).all() and (pic[10, 3] == [0, 255, 0]).all()
    defaults = decode_png(OMEArrow(arr, "CYX")._repr_png_())  # no stored colours: red, green, blue
    assert (defaults[1, 1] == [255, 0, 0]).all() and (defaults[5, 5] == [0, 255, 0]).all()
    partly = decode_png(colored(arr, "CYX", [None, None, MAGENTA])._repr_png_())
    assert (partly[1, 1] == [255, 0, 0]).all() and (partly[10, 3] == [255, 0, 255]).all()


@settings(max_examples=25, deadline=None)
@given(z=st.integers(1, 5), seed=st.integers(0, 999), dtype=st.sampled_from(["uint8", "int16", "float32", "uint32"]))
def test_max_projection_matches_numpy(z: int, seed: int, dtype: str) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 200, (z, 9, 7)).astype(dtype)
    src = RecordingSource(arr[None, :, None])
    pic = render(src, Selection.full(src.meta.sizes), size=64)
    expected = arr.max(axis=0).astype(np.float64)
    lo, hi = np.percentile(expected, PERCENTILES)
    want = np.rint(np.clip((expected - lo) / (hi - lo), 0, 1) * 255) if hi > lo else np.where(expected > lo, 255, 0)
    np.testing.assert_allclose(pic[..., 0], want, atol=1)
    assert (pic[..., 0] == pic[..., 1]).all() and (pic[..., 1] == pic[..., 2]).all()  # one channel: grey


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_nan_in_a_float_stack_does_not_hide_the_other_planes(depth: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_module, "BATCH_BYTES", 1)  # batches of one chunk depth
    arr = np.zeros((3, 4, 4), np.float32)
    arr[0] = np.nan
    arr[1, 1, 1] = 5.0
    src = RecordingSource(arr[None, :, None], depth)
    pic = render(src, Selection.full(src.meta.sizes))
    assert pic[1, 1, 0] == 255 and pic[0, 0, 0] == 0
    assert [len(s.z) for s in src.reads] == {1: [1, 1, 1], 2: [2, 1], 3: [3]}[depth]  # Z read a chunk depth at a time


def test_z_batches_fill_the_byte_budget_in_whole_chunk_depths(monkeypatch: pytest.MonkeyPatch) -> None:
    arr = np.random.default_rng(9).integers(0, 9, (1, 7, 2, 8, 8), dtype=np.uint16)
    src = RecordingSource(arr, depth=2)
    whole = render(src, Selection.full(src.meta.sizes))
    assert [len(s.z) for s in src.reads] == [7]  # small: one read
    monkeypatch.setattr(render_module, "BATCH_BYTES", 2 * 8 * 8 * 2 * 4)  # four whole planes of two channels
    src = RecordingSource(arr, depth=2)
    np.testing.assert_array_equal(render(src, Selection.full(src.meta.sizes)), whole)
    assert [len(s.z) for s in src.reads] == [4, 3]


def test_reads_only_the_chosen_t_and_strided_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_module, "BATCH_BYTES", 1)
    arr = np.random.default_rng(2).integers(0, 99, (3, 4, 2, 64, 48), dtype=np.uint16)
    src = RecordingSource(arr)
    pic = render(src, Selection.full(src.meta.sizes), size=16, t=2)
    assert pic.shape == (16, 12, 3)
    assert {tuple(s.t) for s in src.reads} == {(2,)}
    assert sorted(z for s in src.reads for z in s.z) == [0, 1, 2, 3]  # each plane once, one at a time (chunk depth 1)
    assert all(s.y.step == 4 and s.x.step == 4 and len(s.y) == 16 for s in src.reads)
    read = sum(int(np.prod(s.shape)) for s in src.reads)
    assert read == 4 * 2 * 16 * 12  # the pixels shown, nothing more
    want = arr[2, :, :, ::4, ::4].max(axis=0)
    again = render(RecordingSource(want[None, None]), Selection.full({"T": 1, "Z": 1, "C": 2, "Y": 16, "X": 12}))
    np.testing.assert_array_equal(pic, again)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 300), size=st.integers(1, 200))
def test_longest_side_is_the_size_and_reads_stay_near_what_is_shown(h: int, w: int, size: int) -> None:
    render_module.BATCH_BYTES, budget = 1, render_module.BATCH_BYTES  # planes "too large": strided reads
    try:
        check_longest_side(h, w, size)
    finally:
        render_module.BATCH_BYTES = budget


def check_longest_side(h: int, w: int, size: int) -> None:
    src = RecordingSource(np.arange(h * w, dtype=np.int32).reshape(1, 1, 1, h, w))
    pic = render(src, Selection.full(src.meta.sizes), size=size)
    assert max(pic.shape[:2]) == min(size, max(h, w))
    k = min(1.0, size / max(h, w))
    assert abs(pic.shape[0] - h * k) <= 1 and abs(pic.shape[1] - w * k) <= 1  # the aspect ratio is kept
    [read] = src.reads
    assert max(len(read.y), len(read.x)) < 2 * size or max(h, w) <= size


def test_planes_that_fit_the_budget_are_read_whole_and_strided_in_memory() -> None:
    arr = np.random.default_rng(8).integers(0, 999, (1, 5, 2, 64, 40), dtype=np.uint16)
    src = RecordingSource(arr, depth=2)
    pic = render(src, Selection.full(src.meta.sizes), size=16)
    assert [(len(s.z), s.y, s.x) for s in src.reads] == [(5, range(64), range(40))]  # one contiguous read
    strided = RecordingSource(arr, depth=2)
    render_module.BATCH_BYTES, budget = 1, render_module.BATCH_BYTES
    try:
        np.testing.assert_array_equal(render(strided, Selection.full(strided.meta.sizes), size=16), pic)
    finally:
        render_module.BATCH_BYTES = budget
    assert all(s.y.step == 4 for s in strided.reads) and len(strided.reads) == 3


def test_fit_samples_existing_pixels() -> None:
    planes = np.arange(2 * 100 * 300, dtype=np.int64).reshape(2, 100, 300)
    small = fit(planes, (85, 256))
    assert small.shape == (2, 85, 256) and set(small.ravel().tolist()) <= set(planes.ravel().tolist())
    assert fit(planes, (100, 300)) is planes


def test_size_and_t_are_checked() -> None:
    img = OMEArrow(np.zeros((2, 1, 8, 8), np.uint8), "TCYX")
    with pytest.raises(ArgumentError, match="size"):
        img.thumbnail(0)
    with pytest.raises(ArgumentError, match="size"):
        img.thumbnail(2.5)  # type: ignore[arg-type]
    with pytest.raises(SelectionError, match="t=5"):
        img.thumbnail(t=5)
    assert img.thumbnail(3).shape == (3, 3, 3) and img.thumbnail(t=-1).shape == (8, 8, 3)


# -- views and notebook reprs -----------------------------------------------------------------------
def test_views_render_their_selection_whatever_the_layout() -> None:
    arr = np.random.default_rng(3).integers(0, 999, (2, 3, 20, 30), dtype=np.uint16)
    img = OMEArrow(arr, "ZCYX")
    whole = img.thumbnail()
    for view in (img.tensor_view(layout="YXCZ"), img.tensor_view(layout="ZCYX")):
        np.testing.assert_array_equal(view.thumbnail(), whole)
    crop = img.tensor_view(roi=(5, 2, 10, 8), c=[0])
    assert crop.thumbnail().shape == (8, 10, 3)
    with pytest.raises(ArgumentError, match="Y and X"):
        canonical(np.zeros((2, 3)), "CZ")


def test_lazy_view_of_a_file_renders_like_the_eager_image(tmp_path: Path) -> None:
    arr = np.random.default_rng(4).integers(0, 999, (1, 3, 2, 40, 24), dtype=np.uint16)
    out = write_dataset([arr], tmp_path / "d.ome.parquet", dim_order="TZCYX", chunk_shape=(8, 8), progress=False)
    lazy = OMEArrow.scan(out)
    assert lazy.is_lazy
    view = lazy.tensor_view(z=[0, 2], c=1)
    np.testing.assert_array_equal(view.thumbnail(), OMEArrow(arr[:, [0, 2], 1:2], "TZCYX").thumbnail())
    assert lazy.is_lazy and not view.is_collected  # rendering did not execute the view


def test_repr_html_holds_the_png_and_the_facts() -> None:
    img = colored(np.ones((2, 5, 6), np.uint8), "CYX", [RED, None])
    bundle = img._repr_mimebundle_()
    assert decode_png(bundle["image/png"]).shape == (5, 6, 3)
    page = img._repr_html_()
    assert "data:image/png;base64," in page and "uint8" in page and "C=2" in page and "Y=5" in page
    assert "<script" not in page
    view = img.tensor_view(c=0)
    assert "CYX" in view._repr_html_() and decode_png(view._repr_png_()).shape == (5, 6, 3)


def test_damaged_file_raises_in_png_and_shows_the_error_in_html(tmp_path: Path) -> None:
    arr = np.arange(2 * 32 * 32, dtype=np.uint16).reshape(2, 32, 32)
    out = write_dataset([arr], tmp_path / "d.ome.parquet", dim_order="ZYX", chunk_shape=(32, 32), progress=False)
    lazy = OMEArrow.scan(out)
    chunks = [out / "chunks.parquet"]
    data = bytearray(chunks[0].read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])
    chunks[0].write_bytes(bytes(data))
    with pytest.raises(OMEArrowError):
        lazy._repr_png_()
    bundle = lazy._repr_mimebundle_()
    assert "image/png" not in bundle and "Error" in bundle["text/html"]


def test_dataset_grid(tmp_path: Path) -> None:
    import pyarrow as pa

    arrs = [np.full((1, 8 + i, 10), i, np.uint8) for i in range(5)]
    for i, a in enumerate(arrs):
        a[0, : i + 1] = 200
    out = write_dataset(
        arrs,
        tmp_path / "d.ome.parquet",
        dim_order="CYX",
        progress=False,
        metadata=pa.table({"well": [f"A0{i}" for i in range(5)]}),
    )
    from ome_arrow_core import OMEArrowDataset

    ds = OMEArrowDataset.scan(out)
    grid = ds.thumbnails(k=3, size=16)
    assert grid.shape == (4 + 20, 4 + 3 * 20, 3)
    np.testing.assert_array_equal(grid[4 : 4 + 9, 24 : 24 + 10], ds[1].thumbnail(16))
    bundle = ds._repr_mimebundle_()
    page = bundle["text/html"]
    assert page.count("<img") == 5 and "well=A03" in page and "5 image(s)" in page
    assert decode_png(bundle["image/png"]).shape[2] == 3
    assert decode_png(ds._repr_png_()).shape == decode_png(bundle["image/png"]).shape


def test_dataset_grid_shows_an_unreadable_image_as_an_error(tmp_path: Path) -> None:
    files = []
    for i in range(2):
        p = tmp_path / "many" / f"im{i}.ome.tif"
        p.parent.mkdir(exist_ok=True)
        OMEArrow(np.full((4, 4), i + 1, np.uint8)).export("ome-tiff", p)
        files.append(p)
    from ome_arrow_core import OMEArrowDataset

    ds = OMEArrowDataset.scan(tmp_path / "many")
    files[1].write_bytes(files[1].read_bytes()[:40])  # truncated after the table was read
    page = ds._repr_html_()
    assert page.count("<img") == 1 and "Error" in page
    grid = ds.thumbnails(size=4)
    assert (grid[4:8, 12:16] == [96, 0, 0]).all()


def test_thumbnail_png_of_an_unknown_object_is_refused() -> None:
    obj: Any = np.zeros((4, 4))
    with pytest.raises(ArgumentError, match="OMEArrow"):
        thumbnail_png(obj)


def test_damaged_error_type_is_ours() -> None:
    assert issubclass(DamagedFileError, OMEArrowError)


def test_compat_images_show_the_same_thumbnail(tmp_path: Path) -> None:
    import ome_arrow_core.compat as ome_arrow

    arr = np.zeros((2, 6, 8), np.uint16)
    arr[1, 2:4] = 70
    old = ome_arrow.OMEArrow(arr, dim_order="CYX")
    bundle = old._repr_mimebundle_()
    picture = decode_png(bundle["image/png"])
    np.testing.assert_array_equal(picture, old.core_image().thumbnail())
    assert picture[3, 1].tolist() == [
        255,
        255,
        255,
    ]  # the reference's records store white for channels without a colour
    assert "C=2" in old._repr_html_()
    path = tmp_path / "gone.ome.tif"
    OMEArrow(arr, "CYX").export("ome-tiff", path)
    lazy = ome_arrow.OMEArrow(str(path), lazy=True)
    path.write_bytes(b"II*\x00" + b"\x00" * 8)
    assert "Error" in lazy._repr_html_()
