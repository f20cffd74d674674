"""Built-in ingest of numpy arrays and anything with ``__array__`` or ``__dlpack__``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..handlers import Ingester
from ..hookspecs import hookimpl


def _generic(obj: object) -> bool:
    return hasattr(obj, "__array__") or hasattr(obj, "__dlpack__")


def _generic_to_numpy(obj: object) -> np.ndarray:
    if hasattr(obj, "__array__"):
        return np.asarray(obj)
    return np.from_dlpack(obj)  # type: ignore[arg-type]


@hookimpl
def ome_arrow_ingesters() -> Sequence[Ingester]:
    return [
        Ingester(
            name="numpy",
            priority=10,
            matches=lambda o: isinstance(o, np.ndarray),
            to_numpy=np.asarray,
            description="numpy.ndarray",
        ),
        Ingester(
            name="array-like",
            priority=-100,
            matches=_generic,
            to_numpy=_generic_to_numpy,
            description="objects with __array__ or __dlpack__",
        ),
    ]
