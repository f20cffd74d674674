"""``check_reader``: a reader (and the pixel source it opens) against the core's contract."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..dtypes import SUPPORTED
from ..errors import SelectionError
from ..handlers import PixelSource
from ..image import OMEArrow
from ..layout import AXES
from ..registry import Registry, default_registry
from ..selection import Selection
from .conformance import ConformanceError, expect, expect_our_error

__all__ = ["check_reader", "selections_for"]


def selections_for(sizes: Mapping[str, int], seed: int = 0) -> list[tuple[str, Selection]]:
    """Named selections of every kind for an image of ``sizes``: full, one plane, strided,
    gathered (reordered, repeated), crops at the edges and seeded random crops."""
    full = Selection.full(sizes)
    n_t, n_z, n_c, n_y, n_x = (int(sizes[a]) for a in AXES)
    out = [
        ("full", full),
        ("single plane (last t, z, c)", full.select(t=n_t - 1, z=n_z - 1, c=n_c - 1)),
        ("first pixel", full.select(t=0, z=0, c=0, y=range(1), x=range(1))),
        ("strided t, z, c", full.select(t=slice(None, None, 2), z=slice(1 % n_z, None, 2), c=slice(None, None, 2))),
        ("gathered channels, reversed", full.select(c=list(range(n_c))[::-1])),
        ("gathered channel, repeated", full.select(c=[n_c - 1, 0, n_c - 1])),
        ("gathered t and z, reversed", full.select(t=list(range(n_t))[::-1], z=list(range(n_z))[::-1])),
        (
            "crop at the far edges",
            full.select(y=range(n_y - max(1, n_y // 3), n_y), x=range(n_x - max(1, n_x // 3), n_x)),
        ),
        ("last row", full.select(y=range(n_y - 1, n_y))),
        ("last column", full.select(x=range(n_x - 1, n_x))),
    ]
    rng = np.random.default_rng(seed)
    for i in range(6):
        y0, x0 = int(rng.integers(n_y)), int(rng.integers(n_x))
        h, w = int(rng.integers(1, n_y - y0 + 1)), int(rng.integers(1, n_x - x0 + 1))
        picks = {
            ax: sorted(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False).tolist())
            for ax, n in (("t", n_t), ("z", n_z), ("c", n_c))
        }
        out.append(
            (
                f"random crop {i}",
                full.select(t=picks["t"], z=picks["z"], c=picks["c"], y=range(y0, y0 + h), x=range(x0, x0 + w)),
            )
        )
    return out


def _same(got: np.ndarray, want: np.ndarray, check: str) -> None:
    """``got`` has ``want``'s shape, dtype and bytes (NaN payloads included)."""
    expect(isinstance(got, np.ndarray), check, f"returned {type(got).__name__}, expected a numpy array")
    expect(got.dtype == want.dtype, check, f"dtype {got.dtype}, expected {want.dtype}")
    expect(got.shape == want.shape, check, f"shape {got.shape}, expected {want.shape}")
    a, b = np.ascontiguousarray(got), np.ascontiguousarray(want)
    if a.tobytes() != b.tobytes():
        bad = np.argwhere(a.view(np.uint8).reshape(*a.shape, -1) != b.view(np.uint8).reshape(*b.shape, -1))
        raise ConformanceError(
            f"{check}: pixels differ, first at TZCYX index {tuple(int(v) for v in bad[0][:5])} "
            f"({a[tuple(bad[0][:5])]!r} != {b[tuple(bad[0][:5])]!r})"
        )


def _check_meta(img: OMEArrow, expected: np.ndarray | None) -> None:
    meta = img.meta
    expect(img.is_lazy, "scan", "OMEArrow.scan returned an eager image")
    sizes = {ax: meta.sizes.get(ax) for ax in AXES}
    expect(
        all(isinstance(n, int) and n >= 1 for n in sizes.values()),
        "meta.sizes",
        f"{dict(meta.sizes)}; expected positive ints for each of T, Z, C, Y, X",
    )
    expect(
        isinstance(meta.dtype, np.dtype) and meta.dtype.name in SUPPORTED,
        "meta.dtype",
        f"{meta.dtype!r}; expected a numpy dtype among {sorted(SUPPORTED)}",
    )
    if expected is not None:
        expect(img.meta.shape == expected.shape, "meta.sizes", f"shape {img.meta.shape}, expected {expected.shape}")
        expect(img.dtype == expected.dtype, "meta.dtype", f"{img.dtype}, expected {expected.dtype}")
    describe = getattr(img.source, "describe", None)
    if callable(describe):
        facts = describe()
        expect(isinstance(facts, dict), "describe()", f"returned {type(facts).__name__}, expected a dict")
        try:
            json.dumps(facts)
        except (TypeError, ValueError) as exc:
            raise ConformanceError(f"describe(): not JSON-able ({exc}): {facts!r}") from None


def _check_selections(source: PixelSource, expected: np.ndarray, seed: int) -> None:
    for name, sel in selections_for(source.meta.sizes, seed):
        _same(source.read(sel), sel.apply(expected), f"read({name}: {sel!r})")


def _check_public_views(img: OMEArrow, expected: np.ndarray) -> None:
    n_t, _, n_c, n_y, n_x = img.meta.shape
    view = img.tensor_view(
        t=n_t - 1,
        z=0,
        c=list(range(n_c))[::-1],
        roi=(n_x // 2, n_y // 2, n_x - n_x // 2, n_y - n_y // 2),
        layout="TZCYX",
    )
    _same(view.to_numpy(), expected[n_t - 1 :, :1, ::-1, n_y // 2 :, n_x // 2 :], "OMEArrow.scan(...).tensor_view")
    refused: dict[str, dict[str, Any]] = {
        "t past the end": {"t": n_t},
        "empty c": {"c": []},
        "roi past the edge": {"roi": (n_x - 1, 0, 2, 1)},
    }
    for name, kwargs in refused.items():
        expect_our_error(f"tensor_view({name})", partial(_view_of, img, kwargs), (SelectionError,))


def _view_of(img: OMEArrow, kwargs: dict[str, Any]) -> np.ndarray:
    return img.tensor_view(**kwargs).to_numpy()


def _check_repeat_threads_aliasing(source: PixelSource, expected: np.ndarray, seed: int) -> None:
    sels = selections_for(source.meta.sizes, seed + 1)
    full = Selection.full(source.meta.sizes)
    first = source.read(full)
    _same(source.read(full), expected, "a second read of the same selection")
    for _, sel in sels[1:4]:
        source.read(sel)
    _same(first, expected, "an earlier output after later reads (a scratch buffer reused?)")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: source.read(s[1]), sels * 2))
    for (name, sel), got in zip(sels * 2, results):
        _same(got, sel.apply(expected), f"read from 8 threads ({name})")
    if first.flags.writeable:
        first[...] = ~first if first.dtype == np.bool_ else _inverted(first)
        _same(source.read(full), expected, "a read after writing into an earlier writeable output (aliased?)")


def _inverted(arr: np.ndarray) -> np.ndarray:
    flipped = np.array(arr, order="C")
    flipped.reshape(-1).view(np.uint8)[...] ^= 0xFF
    return flipped


def _check_bad_files(path: Path, reg: Registry, reader_name: str, opts: dict[str, Any]) -> None:
    missing = path.with_name("no-such-" + path.name)
    expect_our_error("a missing file", lambda: OMEArrow.scan(missing, registry=reg, **opts), (FileNotFoundError,))
    if path.is_dir():
        return  # truncating or garbling a directory store is the store's own test
    data = path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="ome-arrow-kit-") as tmp:
        bad = Path(tmp) / path.name
        if reg.resolve_reader(bad).name != reader_name:
            return  # claimed by sniffing the real bytes: garbage goes to another reader
        rng = np.random.default_rng(len(data))
        for what, content in (
            ("an empty file", b""),
            ("a truncated file (first half)", data[: len(data) // 2]),
            ("a file of garbage bytes", rng.integers(0, 256, max(64, len(data)), np.uint8).tobytes()),
        ):
            bad.write_bytes(content)
            expect_our_error(what, _read_all(bad, reg, opts))


def _read_all(path: Path, reg: Registry, opts: dict[str, Any]) -> Callable[[], object]:
    return lambda: OMEArrow.scan(path, registry=reg, **opts).to_numpy()


def check_reader(
    path: str | os.PathLike[str],
    expected: np.ndarray | None = None,
    *,
    registry: Registry | None = None,
    seed: int = 0,
    **open_options: Any,
) -> list[str]:
    """Check the reader ``registry`` resolves for ``path`` (default: the shared registry).

    ``expected`` is the image's pixels in the storage order ``TZCYX``, the order of the reader's
    ``read`` (None: the reader's full read is taken as the truth, and only consistency is checked).
    ``open_options`` go to the reader (``format=``, ``image_id=``...). Raises :class:`~ome_arrow_core.testing.ConformanceError` (an AssertionError)
    naming the first broken check; returns the names of the checks that ran.
    """
    path = Path(path)
    reg = registry or default_registry()
    reader = reg.resolve_reader(path, open_options.get("format"))
    img = OMEArrow.scan(path, registry=reg, **open_options)
    _check_meta(img, expected)
    source = img.source
    truth = np.array(source.read(Selection.full(source.meta.sizes)) if expected is None else expected)
    done = ["metadata"]
    _check_selections(source, truth, seed)
    _check_public_views(img, truth)
    _same(OMEArrow(path, registry=reg, **open_options).to_numpy(layout="TZCYX"), truth, "OMEArrow(path).to_numpy()")
    done += ["selections", "public views"]
    _check_repeat_threads_aliasing(source, truth, seed)
    done += ["repeat", "threads", "aliasing"]
    with tempfile.TemporaryDirectory(prefix="ome-arrow-kit-") as tmp:
        copy = Path(tmp) / path.name
        (shutil.copytree if path.is_dir() else shutil.copyfile)(path, copy)
        _check_bad_files(copy, reg, reader.name, open_options)
    done.append("bad files")
    return done
