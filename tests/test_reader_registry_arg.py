"""A reader's ``open`` gets ``registry=`` only when its signature takes it; the answer is remembered per reader
(hashable callables) and worked out each time for unhashable ones."""

from __future__ import annotations

from typing import Any

from ome_arrow_core.opening import _with_registry
from ome_arrow_core.registry import default_registry


def takes(path: str, registry: Any = None) -> Any:
    return None


def refuses(path: str) -> Any:
    return None


class Unhashable:
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, path: str, registry: Any = None) -> Any:
        return None


def test_registry_is_passed_only_to_readers_that_take_it() -> None:
    reg = default_registry()
    for _ in range(2):  # the second answer comes from the cache
        assert _with_registry(takes, reg, {"row": 1}, "t", "x") == {"row": 1, "registry": reg}
        assert _with_registry(refuses, reg, {"row": 1}, "r", "x") == {"row": 1}
        assert _with_registry(Unhashable(), reg, {}, "u", "x") == {"registry": reg}
    assert _with_registry(len, reg, {}, "len", "x") == {}  # a builtin: no readable signature
