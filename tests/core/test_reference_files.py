"""Files written by ome-arrow 0.1.0 (tests/data/reference) read back exactly, eagerly and lazily."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ome_arrow_core import OMEArrow

DATA = Path(__file__).resolve().parent.parent / "data" / "reference"
EXPECTED = json.loads((DATA / "expected.json").read_text())
CASES = [(f, im) for f in EXPECTED["fixtures"] for im in f["images"]]


def expected_array(fixture: dict[str, Any], image: dict[str, Any]) -> np.ndarray:
    t, c, z, y, x = fixture["shape_tczyx"]
    a = ((np.arange(t * c * z * y * x, dtype=np.int64) * 7 + image["offset"]) % 65521).astype(np.uint16)
    a = a.reshape(t, c, z, y, x)
    return a.astype(np.float32) / 4 if fixture["dtype"] == "float32" else a


def open_kwargs(fixture: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    if "image_id" in image:
        kw["image_id"] = image["image_id"]
    elif "row_index" in image:
        kw["row"] = image["row_index"]
    if fixture.get("column") and "image_id" not in image:
        kw["column"] = fixture["column"]
    return kw


@pytest.mark.parametrize(("fixture", "image"), CASES, ids=[f"{f['path']}-{i}" for i, (f, _) in enumerate(CASES)])
def test_reference_fixture(fixture: dict[str, Any], image: dict[str, Any]) -> None:
    exp = expected_array(fixture, image)
    assert hashlib.sha256(exp.tobytes()).hexdigest() == image["sha256"]
    img = OMEArrow(DATA / fixture["path"], **open_kwargs(fixture, image))
    assert img.dtype == exp.dtype
    np.testing.assert_array_equal(img.to_numpy(), exp.transpose(0, 2, 1, 3, 4))
    lazy = OMEArrow.scan(DATA / fixture["path"], **open_kwargs(fixture, image))
    view = lazy.tensor_view(t=0, z=2, c=1, roi=(7, 5, 30, 20), layout="YX")
    np.testing.assert_array_equal(view.to_numpy(), exp[0, 1, 2, 5:25, 7:37])


def test_column_is_detected_without_a_name() -> None:
    img = OMEArrow(DATA / "oa010_planes_only.parquet")
    assert img.sizes == {"T": 1, "Z": 3, "C": 2, "Y": 32, "X": 48}
