"""Property tests: file patterns name the files they should at the coordinates they should, and a
stack's selections equal the same selections of ``np.stack`` of its files."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ome_arrow_core import OMEArrow
from ome_arrow_core.layout import AXES
from ome_arrow_core.selection import Selection
from ome_arrow_core.stacks import parse_pattern, resolve_files
from ome_arrow_core.stacks.patterns import AXIS_WORDS

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=4)


@st.composite
def groups(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A group's text and the values it must expand to (built independently of the parser)."""
    kind = draw(st.sampled_from(["list", "range", "padded", "step", "letters"]))
    if kind == "list":
        values = draw(st.lists(_TOKEN, min_size=1, max_size=4, unique=True))
        return ",".join(values), values
    if kind == "letters":
        a = draw(st.integers(0, 20))
        n = draw(st.integers(1, 5))
        return f"{chr(65 + a)}-{chr(65 + a + n - 1)}", [chr(65 + a + i) for i in range(n)]
    lo = draw(st.integers(0, 120))
    n = draw(st.integers(1, 5))
    step = draw(st.integers(2, 4)) if kind == "step" else 1
    hi = lo + (n - 1) * step
    if kind == "range":  # no padding: Bio-Formats pads only ends of equal width
        text = f"{lo}-{hi}" + (f":{step}" if step > 1 else "")
        return text, [str(v) for v in range(lo, hi + 1, step)]
    width = draw(st.integers(len(str(hi)), 5))
    text = f"{lo:0{width}d}-{hi:0{width}d}" + (f":{step}" if step > 1 else "")
    return text, [f"{v:0{width}d}" for v in range(lo, hi + 1, step)]


@st.composite
def patterns(draw: st.DrawFn) -> tuple[str, str, list[list[str]]]:
    """(pattern text, its axes, the values of each group); words before groups name distinct axes."""
    axes = draw(st.permutations("TCZ").map(lambda p: "".join(p[: draw(st.integers(1, 3))])))
    text, values = "", []
    for ax in axes:
        word = draw(st.sampled_from(sorted(AXIS_WORDS[ax])))
        word = word.upper() if draw(st.booleans()) else word
        spec, vals = draw(groups())
        text += draw(st.sampled_from(["", "x_", "img-", "A1_"])) + word + f"<{spec}>"
        values.append(vals)
    return text + draw(st.sampled_from([".npy", "_end.npy"])), axes, values


@SETTINGS
@given(patterns())
def test_pattern_round_trips_axis_coordinates(case: tuple[str, str, list[list[str]]]) -> None:
    text, axes, values = case
    parsed = parse_pattern(text)
    assert [list(g.values) for g in parsed.groups] == values
    assert "".join(g.guessed_axis or "?" for g in parsed.groups) == axes
    with tempfile.TemporaryDirectory() as tmp:
        expected: dict[str, dict[str, int]] = {}
        for combo in itertools.product(*(list(enumerate(v)) for v in values)):
            name = parsed.name([v for _, v in combo])
            expected[name] = {ax: i for ax, (i, _) in zip(axes, combo)}
            (Path(tmp) / name).write_bytes(b"")
        grid = resolve_files(str(Path(tmp) / text))
        assert grid.axes == axes and grid.shape == tuple(len(v) for v in values)
        assert len(set(grid.files)) == len(grid.files) == len(expected)
        for number, file in enumerate(grid.files):
            assert grid.position(number) == expected[file.name]
            assert grid.index([expected[file.name][ax] for ax in axes]) == number


def _index(n: int) -> st.SearchStrategy[object]:
    return st.one_of(
        st.none(),
        st.integers(-n, n - 1),
        st.lists(st.integers(0, n - 1), min_size=1, max_size=4),
        st.builds(slice, st.none() | st.integers(0, n - 1), st.none(), st.sampled_from([None, 1, 2, -1])),
    )


@st.composite
def stacks(draw: st.DrawFn) -> tuple[str, tuple[int, ...], tuple[int, int, int], str]:
    axes = draw(st.sampled_from(["Z", "T", "C", "TZ", "CZ", "TCZ"]))
    shape = tuple(draw(st.integers(1, 3)) for _ in axes)
    ny, nx = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(["uint8", "int16", "uint32", "float32", "float64"]))
    return axes, shape, (ny, nx, draw(st.integers(0, 2**16))), dtype


@SETTINGS
@given(stacks(), st.data())
def test_stack_selection_equals_np_stack(
    case: tuple[str, tuple[int, ...], tuple[int, int, int], str], data: st.DataObject
) -> None:
    axes, shape, (ny, nx, seed), dtype = case
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    arrs = [rng.integers(0, 100, (ny, nx)).astype(dtype) for _ in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        files = [Path(tmp) / f"f{i}.npy" for i in range(n)]
        for f, a in zip(files, arrs):
            np.save(f, a)
        img = OMEArrow.scan(files, dim_order=axes, stack_shape=shape)
        stacked = np.stack(arrs).reshape(*shape, ny, nx)  # stacking axes, then YX
        order = axes + "".join(a for a in "TZC" if a not in axes)
        truth = stacked.reshape(*shape, *([1] * (3 - len(axes))), ny, nx).transpose(
            [order.index(a) for a in "TZC"] + [3, 4]
        )
        sizes = dict(zip(AXES, truth.shape))
        sel = Selection.full(sizes).select(
            t=data.draw(_index(sizes["T"])),
            z=data.draw(_index(sizes["Z"])),
            c=data.draw(_index(sizes["C"])),
            y=range(
                *sorted(data.draw(st.tuples(st.integers(0, ny), st.integers(0, ny)).filter(lambda p: p[0] != p[1])))
            ),
            x=range(
                *sorted(data.draw(st.tuples(st.integers(0, nx), st.integers(0, nx)).filter(lambda p: p[0] != p[1])))
            ),
        )
        got = img.source.read(sel)
        assert got.dtype == truth.dtype
        np.testing.assert_array_equal(got, sel.apply(truth))


@SETTINGS
@given(
    source=st.one_of(
        st.text(max_size=12),
        st.text("ab.<>*?[]0-", max_size=12),
        st.text("ab.<>*?[]0-", max_size=12).map(Path),
        st.lists(st.text("ab<>*?[]0", min_size=1, max_size=5), max_size=3),
        st.tuples(st.text("ab<>*", max_size=4)),
        st.integers(),
        st.none(),
    )
)
@example("a[1].tif")
@example("z<0-3>.tif")
@example("z*.tif")
@example(Path("z?.tif"))
@example(["a.tif"])
def test_the_cheap_stack_check_never_misses_a_stack(source: object) -> None:
    """``OMEArrow(source)`` loads the stack code only when ``may_be_stack_input`` says so: it must say so for
    every input ``is_stack_input`` takes as a stack (a path with a group or a wildcard, a list of paths)."""
    from ome_arrow_core.image_input import may_be_stack_input
    from ome_arrow_core.stacks import is_stack_input

    if is_stack_input(source):
        assert may_be_stack_input(source)
    if isinstance(source, (str, Path)) and not any(c in str(source) for c in "<*?["):
        assert not may_be_stack_input(source)  # a plain path skips the stack code
