"""``iter_dlpack(..., stack=N)``: up to N items of one shape handed over as one tensor with a leading axis.

The spec the tests check, independently of how the stream cuts its stacks: each stack holds items of one shape;
read in order, the items of each shape are exactly that shape's items of the unstacked stream, in its order; and
every stack of a shape but its last is full.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import flip_byte
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_export_many import Probe, registry_with
from test_tile_streams import page_of_tile, pixels, written

import ome_arrow_core
from ome_arrow_core import OMEArrow, Registry, TensorView
from ome_arrow_core.errors import ArgumentError, ChecksumError, SelectionError
from ome_arrow_core.plugin_api import HostBlocks


def _by_shape(items: list[np.ndarray]) -> dict[tuple[int, ...], list[np.ndarray]]:
    out: dict[tuple[int, ...], list[np.ndarray]] = defaultdict(list)
    for a in items:
        out[a.shape].append(a)
    return out


def check_stacks(stacks: list[np.ndarray], items: list[np.ndarray], n: int) -> None:
    """``stacks`` are ``items`` (the unstacked stream) stacked by ``n`` as the module docstring says."""
    unstacked: list[np.ndarray] = []
    sizes: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for s in stacks:
        assert 1 <= s.shape[0] <= n
        sizes[s.shape[1:]].append(s.shape[0])
        unstacked += list(s)
    want, got = _by_shape(items), _by_shape(unstacked)
    assert got.keys() == want.keys()
    for shape, tiles in want.items():
        assert len(got[shape]) == len(tiles)
        for g, e in zip(got[shape], tiles):
            np.testing.assert_array_equal(g, e)
        assert all(k == n for k in sizes[shape][:-1])  # full but the last


def stream(view: Any, **kw: Any) -> list[np.ndarray]:
    return [np.from_dlpack(t) for t in view.iter_dlpack(**kw)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40)),
    tile=st.tuples(st.integers(1, 17), st.integers(1, 17)),
    n=st.integers(1, 9),
    shuffle=st.booleans(),
    prefetch=st.integers(0, 2),
)
def test_stacks_of_an_image_in_memory(
    shape: tuple[int, int, int], tile: tuple[int, int], n: int, shuffle: bool, prefetch: int
) -> None:
    a = pixels((shape[0], 1, *shape[1:]), "int16", seed=sum(shape))
    view = OMEArrow(a, "ZCYX").tensor_view(layout="ZYX")
    kw: dict[str, Any] = {"tile_size": tile, "shuffle": shuffle, "seed": 7, "prefetch": prefetch}
    check_stacks(stream(view, stack=n, **kw), stream(view, **kw), n)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    a = pixels((3, 2, 70, 50), "float32", seed=4)  # ZCYX, chunks of 16x16: tiles cross chunks and edges
    return written(tmp_path_factory.mktemp("stacked"), a, (16, 16)), a


@settings(max_examples=30, deadline=None)
@given(
    tile=st.tuples(st.integers(4, 40), st.integers(4, 40)),
    n=st.integers(1, 70),
    batch=st.sampled_from([None, 1, 2]),
    shuffle=st.booleans(),
    prefetch=st.integers(0, 2),
)
def test_stacks_of_a_stored_image(
    stored: tuple[Path, np.ndarray], tile: tuple[int, int], n: int, batch: int | None, shuffle: bool, prefetch: int
) -> None:
    path, a = stored
    view = OMEArrow.scan(path).tensor_view(c=1, layout="ZYX")
    kw: dict[str, Any] = {"tile_size": tile, "shuffle": shuffle, "seed": 3, "prefetch": prefetch}
    eager = OMEArrow(a, "ZCYX").tensor_view(c=1, layout="ZYX")
    items = stream(eager, **kw)
    check_stacks(stream(view, stack=n, **kw), items, n)
    if batch is not None:  # batches over T: the layout has none here, so one item per tile all the same
        check_stacks(stream(view, stack=n, batch_size=batch, **kw), items, n)


def test_tiles_that_divide_the_plane_stack_in_stream_order(tmp_path: Path) -> None:
    a = pixels((2, 1, 64, 64), "uint16", seed=5)
    view = OMEArrow.scan(written(tmp_path, a, (16, 16))).tensor_view(layout="ZYX")
    stacks = stream(view, tile_size=16, stack=5)
    assert [s.shape for s in stacks] == [(5, 2, 16, 16)] * 3 + [(1, 2, 16, 16)]
    np.testing.assert_array_equal(np.concatenate(stacks), np.stack(stream(view, tile_size=16)))


def test_batches_over_t_stack_too() -> None:
    a = pixels((5, 1, 1, 8, 8), "uint8", seed=6)
    view = OMEArrow(a, "TCZYX").tensor_view(layout="TYX")
    stacks = stream(view, batch_size=2, stack=2)
    assert [s.shape for s in stacks] == [(2, 2, 8, 8), (1, 1, 8, 8)]  # the last batch has one T: a stack alone
    np.testing.assert_array_equal(stacks[0], a[:4, 0, 0].reshape(2, 2, 8, 8))
    np.testing.assert_array_equal(stacks[1][0], a[4:, 0, 0])


def test_3d_tiles_stack() -> None:
    a = pixels((4, 1, 8, 8), "uint16", seed=8)
    view = OMEArrow(a, "ZCYX").tensor_view(layout="ZYX")
    stacks = [np.from_dlpack(t) for t in view.iter_tiles_3d((2, 4, 4), stack=8)]
    assert [s.shape for s in stacks] == [(8, 2, 4, 4)]
    np.testing.assert_array_equal(stacks[0][7], a[2:4, 0, 4:8, 4:8])


@pytest.mark.parametrize("lazy", [True, False], ids=["file", "in memory"])
def test_a_device_stack_is_one_export(tmp_path: Path, lazy: bool) -> None:
    """Each stack goes to the device in one ``export`` call (never export_many: it is one tensor already)."""
    a = pixels((2, 1, 96, 80), "uint16", seed=1)
    probe = Probe(many=True)
    reg = registry_with(probe)
    img = OMEArrow.scan(written(tmp_path, a, (16, 16)), registry=reg) if lazy else OMEArrow(a, "ZCYX", registry=reg)
    view = img.tensor_view(z=1, layout="YX")
    got = [np.asarray(t) for t in view.iter_dlpack(tile_size=16, stack=8, device="cuda", prefetch=1)]
    assert [g.shape for g in got] == [(8, 16, 16)] * 3 + [(6, 16, 16)]
    assert probe.one_calls == 4 and probe.many_calls == []
    np.testing.assert_array_equal(
        np.concatenate(got), np.stack(stream(OMEArrow(a, "ZCYX").tensor_view(z=1, layout="YX"), tile_size=16))
    )


@pytest.mark.parametrize("prefetch", [0, 2])
def test_a_flipped_byte_raises_at_its_stack_after_the_stacks_before_it(tmp_path: Path, prefetch: int) -> None:
    a = pixels((1, 1, 160, 160), "uint16", seed=2)
    out = written(tmp_path, a, (16, 16))
    img = OMEArrow.scan(out)
    img.to_numpy()  # audited: the stream reads whole chunks together
    off, size = page_of_tile(out, 0, 0, 112, 32)  # tile 72: in the stack of tiles 70-79
    flip_byte(out / "chunks.parquet", off + size - 3)
    got = []
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        for t in img.tensor_view(layout="YX").iter_dlpack(tile_size=16, stack=10, prefetch=prefetch):
            got.append(np.from_dlpack(t))
    assert len(got) == 7
    np.testing.assert_array_equal(
        np.concatenate(got), a[0, 0, :112].reshape(7, 16, 10, 16).swapaxes(1, 2).reshape(70, 16, 16)
    )


def test_a_stack_is_read_only_on_the_cpu_and_numpy_mode_copies() -> None:
    a = pixels((1, 1, 32, 32), "uint8", seed=9)
    view = OMEArrow(a, "ZCYX").tensor_view(layout="YX")
    (s,) = stream(view, tile_size=16, stack=4)
    assert not s.flags.writeable
    (w,) = [np.from_dlpack(t) for t in view.iter_dlpack(tile_size=16, stack=4, mode="numpy")]
    w[0, 0, 0] ^= 1  # a copy of its own: the image is untouched
    assert view.to_numpy()[0, 0] == a[0, 0, 0, 0]


@pytest.mark.parametrize(
    ("stack", "error"), [(0, SelectionError), (-2, SelectionError), (1.5, ArgumentError), ("4", ArgumentError)]
)
def test_a_bad_stack_is_refused(stack: object, error: type[Exception]) -> None:
    view = OMEArrow(pixels((1, 1, 8, 8), "uint8", seed=1), "ZCYX").tensor_view(layout="YX")
    with pytest.raises(error, match="stack"):
        view.iter_dlpack(tile_size=4, stack=stack)  # type: ignore[arg-type]


def test_torch_takes_a_stack() -> None:
    torch = pytest.importorskip("torch")
    a = pixels((1, 1, 32, 32), "int16", seed=10)
    view = OMEArrow(a, "ZCYX").tensor_view(layout="YX")
    (t,) = [torch.from_dlpack(x) for x in view.iter_dlpack(tile_size=16, stack=4, mode="numpy")]
    assert tuple(t.shape) == (4, 16, 16)
    np.testing.assert_array_equal(t.numpy()[3], a[0, 0, 16:, 16:])


def stitched(view: Any, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    """The view's pixels rebuilt from ``iter_dlpack(with_index=True, **kw)``, and how often each was written."""
    full = view.to_numpy()
    out, seen = np.zeros_like(full), np.zeros(full.shape, np.int32)
    for index, t in view.iter_dlpack(with_index=True, **kw):
        got = np.from_dlpack(t)
        for i, ix in enumerate(index) if kw.get("stack") else [(None, index)]:
            part = got if i is None else got[i]
            out[ix] = part
            seen[ix] += 1
    return out, seen


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 30), st.integers(1, 30)),
    tile=st.one_of(st.none(), st.tuples(st.integers(1, 12), st.integers(1, 12))),
    batch=st.sampled_from([None, 1, 2, 3]),
    n=st.sampled_from([None, 1, 3, 8]),
    shuffle=st.booleans(),
    lazy=st.booleans(),
    prefetch=st.integers(0, 2),
)
def test_each_item_says_where_it_goes(
    tmp_path_factory: pytest.TempPathFactory,
    shape: tuple[int, int, int, int],
    tile: tuple[int, int] | None,
    batch: int | None,
    n: int | None,
    shuffle: bool,
    lazy: bool,
    prefetch: int,
) -> None:
    a = pixels((shape[0], 1, *shape[1:]), "uint16", seed=sum(shape))  # TCZYX with C=1
    img = OMEArrow(a[:, 0:1], "TCZYX")
    if lazy:
        path = tmp_path_factory.mktemp("where") / "w.ome.parquet"
        img.export("parquet", path, chunk_shape=(1, 8, 8), compression=None)
        img = OMEArrow.scan(path)
    view = img.tensor_view(c=0, layout="TZYX")
    kw: dict[str, Any] = {"tile_size": tile, "batch_size": batch, "shuffle": shuffle, "seed": 1, "prefetch": prefetch}
    out, seen = stitched(view, stack=n, **kw)
    np.testing.assert_array_equal(out, a[:, 0])
    assert (seen == 1).all()  # every pixel exactly once


def test_an_index_is_a_tuple_of_slices_and_gathered_t_a_list() -> None:
    a = pixels((4, 1, 1, 8, 8), "uint8", seed=6)
    view = OMEArrow(a, "TCZYX").tensor_view(layout="TYX")
    (first, _), *_ = view.iter_dlpack(batch_size=2, tile_size=(8, 4), with_index=True)
    assert first == (slice(0, 2), slice(0, 8), slice(0, 4))
    (shuffled, t), *_ = view.iter_dlpack(batch_size=2, shuffle=True, seed=0, with_index=True)
    assert isinstance(shuffled[0], list) and shuffled[1:] == (slice(None), slice(None))
    np.testing.assert_array_equal(np.from_dlpack(t), a[shuffled[0], 0, 0])


class Pinned:
    """A device exporter with host memory of its own (as a GPU's pinned memory): ``found`` says, for each view it
    exported, whether the view lay in a block its allocator handed out (copied as it is, no staging)."""

    def __init__(self) -> None:
        self.blocks = HostBlocks()
        self.found: list[bool] = []

    def allocate(self, nbytes: int) -> np.ndarray:
        raw = np.empty(nbytes + 64, np.uint8)
        skip = -raw.ctypes.data % 64  # 64-byte aligned, as the contract asks
        return self.blocks.add(raw[skip : skip + nbytes])

    def export(self, view: TensorView, **_: Any) -> np.ndarray:
        self.found.append(self.blocks.find(view.to_numpy()) is not None)
        return np.array(view.to_numpy(), copy=True)

    @ome_arrow_core.hookimpl
    def ome_arrow_exporters(self) -> list[ome_arrow_core.Exporter]:
        return [
            ome_arrow_core.Exporter(
                name="pinned", devices=("cuda",), priority=100, export=self.export, host_memory=self.allocate
            )
        ]


@pytest.mark.parametrize("lazy", [True, False], ids=["file", "in memory"])
def test_a_device_stack_is_built_in_the_exporters_host_memory(tmp_path: Path, lazy: bool) -> None:
    a = pixels((1, 1, 1024, 1024), "uint16", seed=11)  # 16 tiles of 256x256: 2 MiB a stack of 16, 1 MiB of 8
    pinned = Pinned()
    reg = Registry()
    reg.register(pinned, name="pinned")
    img = OMEArrow.scan(written(tmp_path, a, (256, 256)), registry=reg) if lazy else OMEArrow(a, "ZCYX", registry=reg)
    view = img.tensor_view(layout="YX")
    got = [np.asarray(t) for t in view.iter_dlpack(tile_size=256, stack=16, device="cuda")]
    assert pinned.found == [True]
    np.testing.assert_array_equal(got[0][5], a[0, 0, 256:512, 256:512])
    small = [np.asarray(t) for t in view.iter_dlpack(tile_size=64, stack=4, device="cuda")]  # 32 KiB stacks
    assert len(small) == 64 and pinned.found[1:] == [False] * 64  # under HOST_MIN_BYTES: Arrow's pool
    np.testing.assert_array_equal(small[-1][-1], a[0, 0, 960:, 960:])
