"""``stack=N`` over tiles that are whole chunks: each stack read straight into its own buffer (the C kernel's
``read_each`` into the stack's slices), no tile copied after it; everything the copied path guarantees kept (the
pixels, each chunk's checksum, a file changed under the stream refused, damage raising at its stack after the stacks
before it, shuffle order, ``with_index``, a GPU exporter's host memory). Anything else is read, then copied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import audited, flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_stacked_streams import Pinned, check_stacks, stream
from test_tile_streams import page_of_tile, pixels, streamed_twice, swapped_pages, written

from ome_arrow_core import OMEArrow, Registry, streaming
from ome_arrow_core.errors import ChecksumError
from ome_arrow_core.selection import Selection
from ome_arrow_core.typed_chunk.box_native import ENV

pytest.importorskip("ome_arrow_kernels")


@pytest.fixture
def copied(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each stack read then copied (``streaming.copied_stack``), in the order they were."""
    calls: list[int] = []
    real = streaming.copied_stack

    def spy(run: list[Any], *args: Any) -> np.ndarray:
        calls.append(len(run))
        return real(run, *args)

    monkeypatch.setattr(streaming, "copied_stack", spy)
    monkeypatch.delenv(ENV, raising=False)
    return calls


def scanned(tmp: Path, a: np.ndarray, chunk: tuple[int, int], **options: Any) -> OMEArrow:
    """``a`` (ZCYX) written with chunks of ``chunk`` and scanned, every chunk read once (audited: streams of whole
    chunks read them together)."""
    img = OMEArrow.scan(written(tmp, a, chunk), **options)
    img.to_numpy()
    return img


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    a = pixels((3, 2, 64, 48), "int16", seed=12)  # ZCYX, chunks of 16x16: 4x3 a plane
    return written(tmp_path_factory.mktemp("in_place"), a, (16, 16)), a


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 13),
    shuffle=st.booleans(),
    prefetch=st.integers(0, 2),
    z=st.integers(0, 2),
    index=st.booleans(),
)
def test_whole_chunk_tiles_are_read_into_their_stack(
    stored: tuple[Path, np.ndarray],
    copied: list[int],
    n: int,
    shuffle: bool,
    prefetch: int,
    z: int,
    index: bool,
) -> None:
    img = OMEArrow.scan(stored[0])
    img.to_numpy()
    view = img.tensor_view(c=1, z=z, layout="YX")
    kw: dict[str, Any] = {"tile_size": 16, "shuffle": shuffle, "seed": 5, "prefetch": prefetch}
    items = stream(view, **kw)  # (tile by tile)
    copied.clear()
    if index:
        got = list(view.iter_dlpack(stack=n, with_index=True, **kw))
        full = view.to_numpy()
        for ix, t in got:
            for i, part in zip(ix, np.from_dlpack(t)):
                np.testing.assert_array_equal(part, full[i])
        stacks = [np.from_dlpack(t) for _, t in got]
    else:
        stacks = stream(view, stack=n, **kw)
    check_stacks(stacks, items, n)
    assert copied == []  # every stack read in place
    assert all(not s.flags.writeable for s in stacks)


def test_3d_tiles_of_whole_chunks_are_read_into_their_stack(tmp_path: Path, copied: list[int]) -> None:
    a = pixels((4, 1, 32, 32), "uint16", seed=13)
    out = tmp_path / "d.ome.parquet"
    OMEArrow(a, "ZCYX").export("parquet", out, chunk_shape=(2, 16, 16), compression=None)
    img = OMEArrow.scan(out)
    img.to_numpy()
    got = [np.from_dlpack(t) for t in img.tensor_view(layout="ZYX").iter_tiles_3d((2, 16, 16), stack=3)]
    assert [g.shape for g in got] == [(3, 2, 16, 16)] * 2 + [(2, 2, 16, 16)]
    want = [a[z : z + 2, 0, y : y + 16, x : x + 16] for z in (0, 2) for y in (0, 16) for x in (0, 16)]
    np.testing.assert_array_equal(np.concatenate(got), np.stack(want))
    assert copied == []


@pytest.mark.parametrize(
    ("how", "kw"),
    [
        ("tiles crossing chunks", {"layout": "YX", "tile": 24}),
        ("a layout that transposes", {"layout": "XY", "tile": 16}),
        ("a cast", {"layout": "YX", "tile": 16, "dtype": "float32"}),
        ("kernel turned off", {"layout": "YX", "tile": 16, "off": True}),
        ("not audited yet", {"layout": "YX", "tile": 16, "fresh": True}),
    ],
)
def test_other_stacks_are_read_then_copied(
    tmp_path: Path, copied: list[int], monkeypatch: pytest.MonkeyPatch, how: str, kw: dict[str, Any]
) -> None:
    a = pixels((1, 1, 48, 48), "uint16", seed=14)
    img = OMEArrow.scan(written(tmp_path, a, (16, 16)))
    if not kw.get("fresh"):
        img.to_numpy()
    if kw.get("off"):
        monkeypatch.setenv(ENV, "0")
    view = img.tensor_view(layout=kw["layout"], **({"dtype": kw["dtype"]} if "dtype" in kw else {}))
    stacks = stream(view, tile_size=kw["tile"], stack=4)
    assert copied and sum(copied) == sum(len(s) for s in stacks), how
    copied.clear()
    check_stacks(stacks, stream(view, tile_size=kw["tile"]), 4)


def test_a_stack_of_an_image_in_memory_is_copied_once(copied: list[int]) -> None:
    a = pixels((1, 1, 32, 32), "uint8", seed=15)
    stacks = stream(OMEArrow(a, "ZCYX").tensor_view(layout="YX"), tile_size=16, stack=4)
    assert copied == [4]
    np.testing.assert_array_equal(stacks[0][3], a[0, 0, 16:, 16:])


@pytest.mark.parametrize("verify", [True, False])
def test_read_many_into_checks_each_chunk(tmp_path: Path, verify: bool) -> None:
    """The source's read into a stack's slices: the pixels, or the chunk's checksum error where a byte flipped
    (no error with checksums off: the bytes as they are)."""
    a = pixels((1, 1, 32, 32), "uint16", seed=16)
    out = written(tmp_path, a, (16, 16))
    src = audited(out, verify=verify)
    sels = [Selection(range(1), range(1), range(1), range(y, y + 16), range(16)) for y in (0, 16)]
    into = np.zeros((2, 1, 1, 1, 16, 16), np.uint16)
    before = src.chunks_read
    assert src.read_many_into(sels, list(into))
    assert src.chunks_read - before == 2
    np.testing.assert_array_equal(into[:, 0, 0, 0], [a[0, 0, :16, :16], a[0, 0, 16:, :16]])
    off, size = page_of_tile(out, 0, 0, 16, 0)
    flip_byte(out / "chunks.parquet", off + size - 3)
    if verify:
        with pytest.raises(ChecksumError, match="do not match their checksum"):
            src.read_many_into(sels, list(into))
    else:
        assert src.read_many_into(sels, list(into))
    assert not src.read_many_into(sels, list(into.transpose(0, 1, 2, 3, 5, 4)))  # not as the chunk lies


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_flipped_byte_in_place_raises_at_its_stack(tmp_path: Path, copied: list[int], prefetch: int) -> None:
    a = pixels((1, 1, 160, 160), "uint16", seed=17)
    img = scanned(tmp_path, a, (16, 16))
    out = tmp_path / "s.ome.parquet"
    off, size = page_of_tile(out, 0, 0, 112, 32)  # tile 72: in the stack of tiles 70-79
    flip_byte(out / "chunks.parquet", off + size - 3)
    got = []
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=16, stack=10, prefetch=prefetch):
            got.append(np.from_dlpack(t))
    assert len(got) == 7
    assert copied == [10]  # the stacks before it read in place; it read again to raise as the copied path does
    np.testing.assert_array_equal(
        np.concatenate(got), a[0, 0, :112].reshape(7, 16, 10, 16).swapaxes(1, 2).reshape(70, 16, 16)
    )


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_file_rewritten_in_place_is_refused_at_its_first_changed_stack(
    tmp_path: Path, copied: list[int], prefetch: int
) -> None:
    out = written(tmp_path, pixels((1, 1, 64, 64), "uint16", seed=18), (16, 16))
    view, want = streamed_twice(out)
    data = swapped_pages(out)  # tiles 1 and 2
    with open(out / "chunks.parquet", "r+b") as f:
        f.write(data)
    copied.clear()
    got = []
    with pytest.raises(ChecksumError):
        for t in view.iter_dlpack(tile_size=16, stack=1, prefetch=prefetch):
            got.append(np.from_dlpack(t))
    assert len(got) == 1
    np.testing.assert_array_equal(got[0][0], want[0])


def test_a_device_stack_is_read_into_the_exporters_host_memory(tmp_path: Path, copied: list[int]) -> None:
    a = pixels((1, 1, 1024, 1024), "uint16", seed=19)
    pinned = Pinned()
    reg = Registry()
    reg.register(pinned, name="pinned")
    img = scanned(tmp_path, a, (256, 256), registry=reg)
    got = [np.asarray(t) for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=256, stack=16, device="cuda")]
    assert pinned.found == [True] and copied == []
    np.testing.assert_array_equal(got[0][6], a[0, 0, 256:512, 512:768])
