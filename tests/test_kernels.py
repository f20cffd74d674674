"""The optional C kernel (backends/kernels, ``ome_arrow_kernels``) against numpy and python-xxhash: random chunk
shapes, output shapes and places; stored digests checked; short files, unusual heads and every bound refused."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

K = pytest.importorskip("ome_arrow_kernels")

HEAD = 10
LEVELS = (b"\x02\x00\x00\x00\x02\x01", b"\x02\x00\x00\x00\x03\x01")


def heads(sizes: list[int]) -> np.ndarray:
    """The usual heads (two variants) of values of each of ``sizes`` bytes."""
    return np.frombuffer(b"".join(lv + n.to_bytes(4, "little") for n in sizes for lv in LEVELS), np.uint8)


def item(
    offset: int, base: int, counts: tuple[int, ...], strides: tuple[int, ...], row: int, kind: int = 0
) -> np.ndarray:
    n = int(np.prod(counts)) * row
    return np.array([offset, n, base, row, *counts, *strides, kind], np.int64)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], int]:
    """An output (TZCYX bytes), a chunk (TCZYX, of itemsize ``b``) and its place in it."""
    b = draw(st.sampled_from([1, 2, 4, 8]))
    chunk = tuple(draw(st.integers(1, m)) for m in (2, 2, 3, 9, 9))
    extra = tuple(draw(st.integers(0, 3)) for _ in range(5))
    t, c, z, y, x = chunk
    shape = (t + extra[0], z + extra[2], c + extra[1], y + extra[3], x + extra[4])  # TZCYX
    at = tuple(draw(st.integers(0, e)) for e in (extra[0], extra[2], extra[1], extra[3], extra[4]))
    pixels = np.frombuffer(
        draw(st.binary(min_size=int(np.prod(chunk)) * b, max_size=int(np.prod(chunk)) * b)), np.uint8
    )
    return pixels.reshape(*chunk[:4], x * b), np.zeros((*shape[:4], shape[4] * b), np.uint8), at, b


def place(out: np.ndarray, at: tuple[int, ...], b: int, chunk: np.ndarray) -> np.ndarray:
    """numpy's placement of TCZYX ``chunk`` (bytes) at ``at`` of TZCYX ``out`` (bytes)."""
    t, c, z, y, xb = chunk.shape
    want = out.copy()
    want[at[0] : at[0] + t, at[1] : at[1] + z, at[2] : at[2] + c, at[3] : at[3] + y, at[4] * b : at[4] * b + xb] = (
        chunk.transpose(0, 2, 1, 3, 4)
    )
    return want


def fields(out: np.ndarray, at: tuple[int, ...], b: int, chunk: np.ndarray, offset: int) -> np.ndarray:
    s = out.strides  # TZCYX bytes
    base = sum(i * st_ for i, st_ in zip(at[:4], s[:4])) + at[4] * b
    return item(offset, base, chunk.shape[:4], (s[0], s[2], s[1], s[3]), chunk.shape[4])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=layouts(), junk=st.integers(0, 100), stream=st.booleans())
def test_read_chunks_places_and_checks_as_numpy_and_xxhash(
    tmp_path: Path, case: tuple, junk: int, stream: bool
) -> None:
    """With ``stream``, aligned rows are placed by non-temporal stores (rows of 16, 32 or 64 bytes here)."""
    chunk, out, at, b = case
    value = chunk.tobytes()
    path = tmp_path / "f"
    path.write_bytes(bytes(junk) + LEVELS[junk % 2] + len(value).to_bytes(4, "little") + value)
    it = fields(out, at, b, chunk, junk)
    want = np.array([xxhash.xxh3_64_intdigest(value)], np.uint64)
    fd = os.open(path, os.O_RDONLY)
    try:
        got = K.read_chunks(
            fd, it, HEAD, 2, heads([len(value)]), want, np.ones(1, np.uint8), out, bytearray(len(value)), stream
        )
        assert got == (1, K.OK, 0)
        np.testing.assert_array_equal(out, place(np.zeros_like(out), at, b, chunk))
        assert K.hash_rows(it, out) == int(want[0])
        before = out.copy()
        bad = want ^ np.uint64(1)
        done, status, value_ = K.read_chunks(
            fd, it, HEAD, 2, heads([len(value)]), bad, np.ones(1, np.uint8), out, bytearray(len(value))
        )
        assert (done, status, value_) == (0, K.MISMATCH, int(want[0]))
        region = place(np.zeros_like(out), at, b, np.ones_like(chunk)).astype(bool)
        np.testing.assert_array_equal(out[~region], before[~region])  # outside the chunk: untouched
        assert (out[region] == before[region]).all() or not out[region].any()  # as it was, or zeroed (read straight)
        # not checked: read and placed whatever its digest
        assert (
            K.read_chunks(fd, it, HEAD, 2, heads([len(value)]), bad, np.zeros(1, np.uint8), out, bytearray(len(value)))[
                1
            ]
            == K.OK
        )
    finally:
        os.close(fd)


def aligned(n: int) -> np.ndarray:
    """``n`` zero bytes at a 64-byte aligned address."""
    raw = np.zeros(n + 64, np.uint8)
    at = -raw.ctypes.data % 64
    return raw[at : at + n]


@pytest.mark.parametrize("stream", [False, True])
def test_aligned_rows_placed_by_streaming_stores_equal_numpys(tmp_path: Path, stream: bool) -> None:
    chunk = np.arange(2 * 8 * 32, dtype=np.uint16).reshape(1, 1, 2, 8, 32)  # rows of 64 bytes
    value = chunk.tobytes()
    path = tmp_path / "f"
    path.write_bytes(LEVELS[1] + len(value).to_bytes(4, "little") + value)
    out = aligned(1 * 3 * 1 * 16 * 128 * 2).view(np.uint16).reshape(1, 3, 1, 16, 128)  # TZCYX
    it = fields(
        out.view(np.uint8).reshape(1, 3, 1, 16, 256),
        (0, 1, 0, 8, 32),
        2,
        chunk.view(np.uint8).reshape(1, 1, 2, 8, 64),
        0,
    )
    want = np.array([xxhash.xxh3_64_intdigest(value)], np.uint64)
    with open(path, "rb") as f:
        got = K.read_chunks(
            f.fileno(), it, HEAD, 2, heads([len(value)]), want, np.ones(1, np.uint8), out, aligned(len(value)), stream
        )
    assert got == (1, K.OK, 0)
    expected = np.zeros_like(out)
    expected[0, 1:3, 0, 8:16, 32:64] = chunk[0, 0]
    np.testing.assert_array_equal(out, expected)


def one_chunk_file(tmp_path: Path, head: bytes | None = None) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    chunk = np.arange(4 * 6, dtype=np.uint8).reshape(1, 1, 1, 4, 6)
    value = chunk.tobytes()
    path = tmp_path / "f"
    path.write_bytes((head or LEVELS[0] + len(value).to_bytes(4, "little")) + value)
    out = np.zeros((1, 1, 1, 8, 8), np.uint8)
    return (
        path,
        out,
        item(0, 8 + 1, (1, 1, 1, 4), (0, 0, 0, 8), 6),
        np.array([xxhash.xxh3_64_intdigest(value)], np.uint64),
    )


@pytest.mark.parametrize("keep", [0, 5, 10, 11, 33])
def test_a_short_file_is_reported_with_the_bytes_read_and_leaves_the_output(tmp_path: Path, keep: int) -> None:
    path, out, it, want = one_chunk_file(tmp_path)
    os.truncate(path, keep)
    with open(path, "rb") as f:
        assert K.read_chunks(f.fileno(), it, HEAD, 2, heads([24]), want, np.ones(1, np.uint8), out, bytearray(64)) == (
            0,
            K.SHORT,
            keep,
        )
    assert not out.any()


def test_a_value_that_is_one_run_of_the_output_is_read_straight_and_zeroed_when_refused(tmp_path: Path) -> None:
    path, out, it, want = one_chunk_file(tmp_path)
    it[:] = item(0, 5, (1, 1, 1, 4), (0, 0, 0, 6), 6)  # rows 6 bytes apart: one run of 24 bytes
    out[:] = 9
    with open(path, "rb") as f:
        args = (
            HEAD,
            2,
            heads([24]),
            want,
            np.ones(1, np.uint8),
            out,
            bytearray(0),
        )  # scratch must hold a value, used or not
        with pytest.raises(ValueError, match="scratch"):
            K.read_chunks(f.fileno(), it, *args)
        assert K.read_chunks(f.fileno(), it, HEAD, 2, heads([24]), want, np.ones(1, np.uint8), out, bytearray(24)) == (
            1,
            K.OK,
            0,
        )
        assert bytes(out.reshape(-1)[5:29]) == bytes(range(24)) and (out.reshape(-1)[29:] == 9).all()
        assert (
            K.read_chunks(
                f.fileno(), it, HEAD, 2, heads([24]), want ^ np.uint64(1), np.ones(1, np.uint8), out, bytearray(24)
            )[1]
            == K.MISMATCH
        )
        assert not out.reshape(-1)[5:29].any() and (out.reshape(-1)[:5] == 9).all()


def test_an_unusual_head_is_reported_and_leaves_the_output(tmp_path: Path) -> None:
    path, out, it, want = one_chunk_file(tmp_path, b"\x02\x00\x00\x00\x04\x01" + (24).to_bytes(4, "little"))
    with open(path, "rb") as f:
        assert K.read_chunks(f.fileno(), it, HEAD, 2, heads([24]), want, np.ones(1, np.uint8), out, bytearray(64)) == (
            0,
            K.HEAD,
            0,
        )
    assert not out.any()


def test_a_bad_file_descriptor_raises_oserror_with_its_errno(tmp_path: Path) -> None:
    _, out, it, want = one_chunk_file(tmp_path)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as err:
        K.read_chunks(fd, it, HEAD, 2, heads([24]), want, np.ones(1, np.uint8), out, bytearray(64))
    assert err.value.errno == errno.EBADF


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({2: -1}, "outside the output"),  # base before the output
        ({2: 64 - 6 - 3 * 8 + 1}, "outside the output"),  # the last row one byte past it
        ({11: -8, 2: 20}, "outside the output"),  # a negative stride below it
        ({7: 5}, "cover exactly"),  # more rows than the value holds
        ({3: 0}, "row length"),
        ({7: 0}, "row count"),
        ({0: -1}, "offset"),
        ({12: 1}, "head kind"),
        ({11: 1 << 62, 7: 4}, "overflow|outside"),
    ],
)
def test_every_bound_is_checked(tmp_path: Path, change: dict[int, int], match: str) -> None:
    path, out, it, want = one_chunk_file(tmp_path)
    for k, v in change.items():
        it[k] = v
    with open(path, "rb") as f, pytest.raises(ValueError, match=match):
        K.read_chunks(f.fileno(), it, HEAD, 2, heads([24]), want, np.ones(1, np.uint8), out, bytearray(64))
    assert not out.any()


def test_the_other_arguments_are_checked(tmp_path: Path) -> None:
    path, out, it, want = one_chunk_file(tmp_path)
    ok = np.ones(1, np.uint8)
    with open(path, "rb") as f:
        fd = f.fileno()
        with pytest.raises(ValueError, match="scratch"):
            K.read_chunks(fd, it, HEAD, 2, heads([24]), want, ok, out, bytearray(23))
        with pytest.raises(ValueError, match="one entry per item"):
            K.read_chunks(fd, it, HEAD, 2, heads([24]), want[:0], ok, out, bytearray(64))
        with pytest.raises(ValueError, match="whole number"):
            K.read_chunks(fd, it[:5], HEAD, 2, heads([24]), want, ok, out, bytearray(64))
        with pytest.raises(ValueError, match="heads"):
            K.read_chunks(fd, it, 65, 2, heads([24]), want, ok, out, bytearray(64))
        for variants in (0, 3, 1 << 58, (1 << 63) - 1):  # 1 << 58 heads of 64 bytes: their size overflows to 0
            with pytest.raises(ValueError, match="heads"):
                K.read_chunks(fd, it, 64, variants, heads([24]), want, ok, out, bytearray(64))
        with pytest.raises((TypeError, BufferError, ValueError)):  # a read-only output
            K.read_chunks(fd, it, HEAD, 2, heads([24]), want, ok, bytes(64), bytearray(64))
        with pytest.raises((TypeError, BufferError, ValueError)):  # a strided output
            K.read_chunks(fd, it, HEAD, 2, heads([24]), want, ok, np.zeros(128, np.uint8)[::2], bytearray(64))
    assert not out.any()


def apart_file(tmp_path: Path, sizes: list[int]) -> tuple[Path, np.ndarray, list[bytes], np.ndarray]:
    """A file of pages of ``sizes`` bytes of values (each head then value, a junk byte between pages), their items
    (one row each, at 0 of their own outputs), the values and their digests."""
    rng = np.random.default_rng(len(sizes))
    values = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    data, items = b"", []
    for v in values:
        items.append(item(len(data), 0, (1, 1, 1, 1), (0, 0, 0, 0), len(v), kind=sorted(set(sizes)).index(len(v))))
        data += LEVELS[len(v) % 2] + len(v).to_bytes(4, "little") + v + b"\xee"
    path = tmp_path / "f"
    path.write_bytes(data)
    want = np.array([xxhash.xxh3_64_intdigest(v) for v in values], np.uint64)
    return path, np.stack(items), values, want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=12), spare=st.integers(0, 9))
def test_read_each_reads_each_value_into_its_own_output_as_numpy_and_xxhash(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], spare: int
) -> None:
    path, items, values, want = apart_file(tmp_path_factory.mktemp("k"), sizes)
    outs = [bytearray(b"\x07" * (len(v) + spare)) for v in values]  # larger than the value: the rest untouched
    with open(path, "rb") as f:
        got = K.read_each(
            f.fileno(), items, HEAD, 2, heads(sorted(set(sizes))), want, np.ones(len(sizes), np.uint8), outs
        )
    assert got == (len(sizes), K.OK, 0)
    for out, v in zip(outs, values):
        assert bytes(out[: len(v)]) == v and out[len(v) :] == b"\x07" * spare


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("damage", ["flipped", "short", "head"])
def test_read_each_stops_at_a_bad_item_zeroing_it_the_items_before_it_complete(
    tmp_path: Path, damage: str, k: int
) -> None:
    sizes = [40, 40, 40, 40]
    path, items, values, want = apart_file(tmp_path, sizes)
    at = int(items[k, 0])
    if damage == "flipped":
        data = bytearray(path.read_bytes())
        data[at + HEAD + 3] ^= 1
        path.write_bytes(bytes(data))
    elif damage == "short":
        os.truncate(path, at + HEAD + 17)
    else:
        data = bytearray(path.read_bytes())
        data[at + 4] = 9  # a head that is not a usual one
        path.write_bytes(bytes(data))
    outs = [bytearray(b"\x07" * 40) for _ in sizes]
    check = np.ones(len(sizes), np.uint8)
    with open(path, "rb") as f:
        done, status, value = K.read_each(f.fileno(), items, HEAD, 2, heads([40]), want, check, outs)
    assert done == k
    assert all(bytes(outs[i]) == values[i] for i in range(k))
    assert outs[k] == bytearray(40)  # zeroed again: no unchecked byte is left in an output
    assert all(outs[i] == b"\x07" * 40 for i in range(k + 1, len(sizes)))  # never read
    if damage == "flipped":
        corrupt = bytearray(values[k])
        corrupt[3] ^= 1
        assert (status, value) == (K.MISMATCH, xxhash.xxh3_64_intdigest(bytes(corrupt)))
        with open(path, "rb") as f:  # unchecked: read as it is
            check[k] = 0
            assert K.read_each(f.fileno(), items, HEAD, 2, heads([40]), want, check, outs)[:2] == (4, K.OK)
        assert bytes(outs[k]) == bytes(corrupt)
    elif damage == "short":
        assert (status, value) == (K.SHORT, 17 + HEAD)
    else:
        assert (status, value) == (K.HEAD, 0)


def test_read_each_checks_its_outputs(tmp_path: Path) -> None:
    path, items, _, want = apart_file(tmp_path, [24, 24])
    ok, hs = np.ones(2, np.uint8), heads([24])
    with open(path, "rb") as f:
        fd = f.fileno()
        with pytest.raises(ValueError, match="one writable buffer per item"):
            K.read_each(fd, items, HEAD, 2, hs, want, ok, [bytearray(24)])
        with pytest.raises(TypeError, match="list or tuple"):
            K.read_each(fd, items, HEAD, 2, hs, want, ok, 5)
        with pytest.raises((TypeError, BufferError, ValueError)):  # a read-only output
            K.read_each(fd, items, HEAD, 2, hs, want, ok, [bytearray(24), bytes(24)])
        with pytest.raises((TypeError, BufferError, ValueError)):  # a strided output
            K.read_each(fd, items, HEAD, 2, hs, want, ok, [bytearray(24), np.zeros(48, np.uint8)[::2]])
        with pytest.raises(ValueError, match="item 1: a row lies outside the output"):
            K.read_each(fd, items, HEAD, 2, hs, want, ok, [bytearray(24), bytearray(23)])
        rows = items.copy()
        rows[1, 3], rows[1, 7] = 12, 2  # two rows of 12: not read straight
        with pytest.raises(ValueError, match="item 1: not one row"):
            K.read_each(fd, rows, HEAD, 2, hs, want, ok, [bytearray(24), bytearray(24)])
        with pytest.raises(ValueError, match="one entry per item"):
            K.read_each(fd, items, HEAD, 2, hs, want[:1], ok, [bytearray(24), bytearray(24)])
        kinds = items.copy()
        kinds[0, 12] = 1
        with pytest.raises(ValueError, match="head kind"):
            K.read_each(fd, kinds, HEAD, 2, hs, want, ok, [bytearray(24), bytearray(24)])
    fd = os.open(path, os.O_RDONLY)
    os.close(fd)
    outs = [bytearray(b"\x07" * 24), bytearray(b"\x07" * 24)]
    with pytest.raises(OSError) as err:
        K.read_each(fd, items, HEAD, 2, hs, want, ok, outs)
    assert err.value.errno == errno.EBADF and outs[0] == bytearray(24) and outs[1] == b"\x07" * 24
