"""``scan.uniform_member`` without image records: the parts listed once, every images footer checked before it is
parsed, and the footers' statistics deciding (one size and dtype, or not)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import flip_byte

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.dataset import scan
from ome_arrow_core.errors import ChecksumError
from ome_arrow_core.typed_chunk.opening import clear_cache

#: Images of four chunks each: no pixel locators, so no image records (the footers decide).
OPTS: dict[str, Any] = {"dim_order": "YX", "chunk_shape": (4, 4), "images_per_group": 2, "progress": False}


def _plate(root: Path, shapes: list[tuple[int, int]], appended: Sequence[tuple[int, int]] = ()) -> Path:
    write_dataset([np.ones(s, np.uint16) for s in shapes], root, **OPTS)
    if appended:
        write_dataset([np.ones(s, np.uint16) for s in appended], root, mode="append", **OPTS)
    clear_cache()
    return root


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = scan.parts_of

    def counting(*a: Any, **kw: Any) -> Any:
        calls[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(scan, "parts_of", counting)
    return calls


@pytest.mark.parametrize(
    ("shapes", "appended", "uniform"),
    [
        ([(8, 8)] * 5, [], True),
        ([(8, 8)] * 4 + [(8, 12)], [], False),
        ([(8, 8)] * 3, [(8, 8)] * 2, True),
        ([(8, 8)] * 3, [(12, 8)], False),
    ],
)
def test_the_footers_decide_with_the_parts_listed_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    shapes: list[tuple[int, int]],
    appended: list[tuple[int, int]],
    uniform: bool,
) -> None:
    root = _plate(tmp_path / "p", shapes, appended)
    ds = OMEArrowDataset.scan(root)
    calls = _counted(monkeypatch)
    assert scan.uniform_member(ds._parts[0]) is uniform
    assert calls == [1]


@pytest.mark.parametrize("appended", [[], [(8, 8)]])
def test_a_damaged_images_footer_is_refused_before_it_is_parsed(
    tmp_path: Path, appended: list[tuple[int, int]]
) -> None:
    root = _plate(tmp_path / "p", [(8, 8)] * 5, appended)
    ds = OMEArrowDataset.scan(root)
    file = root / "images.parquet"
    size = file.stat().st_size
    flip_byte(file, size - 8 - int.from_bytes(file.read_bytes()[-8:-4], "little") // 2)  # in the footer
    clear_cache()
    with pytest.raises(ChecksumError):
        scan.uniform_member(ds._parts[0])
