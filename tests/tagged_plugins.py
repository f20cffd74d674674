"""The test plugins of the registry tests (test_plugin_registry.py, test_plugin_discovery.py): an ndarray
subclass, ``Tagged``, and in-code plugins whose ingester claims it and records each use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ome_arrow_core import Ingester, hookimpl


class Tagged(np.ndarray):
    """An ndarray subclass that test plugins claim."""


def ingest_plugin(
    name: str, priority: int, calls: list[str], requires: tuple[str, ...] = (), extra: str | None = None
) -> object:
    """A plugin object whose ingester claims Tagged arrays and records each use."""

    def to_numpy(obj: object) -> np.ndarray:
        calls.append(name)
        return np.asarray(obj).view(np.ndarray)

    class Plugin:
        @hookimpl
        def ome_arrow_ingesters(self) -> Sequence[Ingester]:
            return [
                Ingester(
                    name=name,
                    priority=priority,
                    requires=requires,
                    extra=extra,
                    matches=lambda o: isinstance(o, Tagged),
                    to_numpy=to_numpy,
                )
            ]

    return Plugin()


def tagged() -> Tagged:
    """A 2 x 3 uint8 Tagged array."""
    return np.arange(6, dtype=np.uint8).reshape(2, 3).view(Tagged)
