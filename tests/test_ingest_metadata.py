"""Ingesters that carry what their object knows: axes, pixel sizes, channel names (``Ingested``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from ome_arrow_core import Ingested, Ingester, OMEArrow, Registry, hookimpl
from ome_arrow_core.errors import ArgumentError, PluginError


class Labelled:
    """A custom array type that knows its axes, pixel sizes and channel names."""

    def __init__(self, data: np.ndarray, dims: str, **facts: Any) -> None:
        self.data, self.dims, self.facts = data, dims, facts


def _registry(**overrides: Any) -> Registry:
    def to_numpy(obj: object) -> Ingested:
        assert isinstance(obj, Labelled)
        facts = {**obj.facts, **overrides}
        return Ingested(obj.data, dims=obj.dims, **facts)

    class Plugin:
        @hookimpl
        def ome_arrow_ingesters(self) -> Sequence[Ingester]:
            return [Ingester(name="labelled", matches=lambda o: isinstance(o, Labelled), to_numpy=to_numpy)]

    reg = Registry()
    reg.register(Plugin(), name="labelled")
    return reg


def test_carried_axes_sizes_and_names_reach_the_image() -> None:
    data = np.arange(2 * 5 * 7, dtype=np.int16).reshape(2, 5, 7)
    obj = Labelled(
        data,
        "CYX",
        physical_size={"x": 0.25, "Y": 0.5},
        physical_unit={"X": "nm", "Y": "nm"},
        channel_names=["DAPI", "GFP"],
        name="cells",
    )
    img = OMEArrow(obj, registry=_registry())
    assert img.meta.sizes == {"T": 1, "Z": 1, "C": 2, "Y": 5, "X": 7}  # not Z=2, as a bare array would give
    assert [c.name for c in img.meta.channels] == ["DAPI", "GFP"]
    assert img.meta.physical_size["X"] == 0.25 and img.meta.physical_size["Y"] == 0.5
    assert img.meta.physical_unit["X"] == "nm" and img.meta.name == "cells"
    np.testing.assert_array_equal(img.tensor_view(layout="CYX").to_numpy(), data)


def test_the_carried_axes_are_not_guessed_from_the_rank() -> None:
    data = np.zeros((3, 4, 5), np.uint8)
    assert OMEArrow(data).meta.sizes["Z"] == 3  # a bare 3-D array is ZYX by the ingest rule
    assert OMEArrow(Labelled(data, "TYX"), registry=_registry()).meta.sizes["T"] == 3


def test_dim_order_that_agrees_is_accepted_and_one_that_contradicts_raises() -> None:
    obj = Labelled(np.zeros((2, 4, 5), np.uint8), "CYX")
    assert OMEArrow(obj, dim_order="cyx", registry=_registry()).meta.sizes["C"] == 2
    with pytest.raises(ArgumentError, match=r"dim_order 'ZYX' contradicts .*'CYX'.*labelled"):
        OMEArrow(obj, dim_order="ZYX", registry=_registry())


@pytest.mark.parametrize(
    ("facts", "match"),
    [
        ({"channel_names": ["a"]}, r"named 1 channels .* image of 2"),
        ({"physical_size": {"X": -1.0}}, r"X=-1.0.*finite number > 0"),
        ({"physical_size": {"X": float("nan")}}, r"finite number > 0"),
        ({"physical_size": {"X": "wide"}}, r"X='wide'"),
        ({"physical_size": {"C": 1.0}}, r"axis 'C'"),
    ],
)
def test_a_lying_ingester_is_named(facts: dict[str, Any], match: str) -> None:
    obj = Labelled(np.zeros((2, 4, 5), np.uint8), "CYX")
    with pytest.raises(PluginError, match=match):
        OMEArrow(obj, registry=_registry(**facts))


def test_carried_axes_the_layout_rejects_blame_the_plugin() -> None:
    obj = Labelled(np.zeros((2, 4, 5), np.uint8), "CQX")
    with pytest.raises(PluginError, match=r"dims from ingester 'labelled' 'CQX' has unknown axes 'Q'"):
        OMEArrow(obj, registry=_registry())
