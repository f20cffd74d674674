"""NGFF axes to ome-arrow-core's TZCYX: which storage axis is which canonical axis.

Axes named ``t c z y x`` (any case) keep their meaning; any other axis goes by its ``type``
(``time`` -> T, ``channel`` -> C, ``space`` -> Z when Z is free); an axis with neither
(``type`` custom or missing) takes the first of T, Z, C still free. Y and X must be present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ome_arrow_core import Selection
from ome_arrow_core.plugin_api import DamagedFileError

__all__ = ["AxisMap"]

_CANONICAL = "TZCYX"
_BY_TYPE = {"time": "T", "channel": "C", "space": "Z"}


@dataclass(frozen=True)
class AxisMap:
    """``targets[i]`` is the canonical letter of storage axis ``i``."""

    names: tuple[str, ...]
    targets: str

    @classmethod
    def from_ngff(cls, names: Sequence[str], types: Sequence[str | None], where: str) -> AxisMap:
        """Map NGFF axis names and types to canonical letters (DamagedFileError when they cannot map)."""
        out: list[str | None] = []
        for name, typ in zip(names, types, strict=True):
            letter = name.upper() if name.upper() in _CANONICAL and len(name) == 1 else _BY_TYPE.get(typ or "")
            out.append(letter)
        for i, letter in enumerate(out):
            if letter is None:
                free = [a for a in "TZC" if a not in out]
                if not free:
                    raise DamagedFileError(
                        f"{where}: axis {names[i]!r} has no free axis of T, Z, C to map to (axes {list(names)})"
                    )
                out[i] = free[0]
        letters = [a for a in out if a is not None]
        if len(set(letters)) != len(letters) or "Y" not in letters or "X" not in letters:
            raise DamagedFileError(
                f"{where}: NGFF axes {list(names)} map to {''.join(letters)}; expected each of T, Z, C at most "
                "once and both Y and X (rename the axes t, c, z, y, x)"
            )
        return cls(tuple(names), "".join(letters))

    def sizes(self, shape: Sequence[int]) -> dict[str, int]:
        """Canonical sizes of a storage array of ``shape`` (absent axes are 1)."""
        return {a: int(shape[self.targets.index(a)]) if a in self.targets else 1 for a in _CANONICAL}

    def index(self, sel: Selection) -> tuple[tuple[slice | np.ndarray, ...], bool]:
        """The storage-order index of ``sel`` and whether it is basic (slices only)."""
        parts: list[slice | np.ndarray] = []
        basic = True
        for letter in self.targets:
            ix = sel.axis(letter)
            if isinstance(ix, range) and ix.step > 0:
                parts.append(slice(ix.start, ix.stop, ix.step))
            else:
                parts.append(np.asarray(list(ix), dtype=np.int64))
                basic = False
        return tuple(parts), basic

    def repeat_absent(self, data: np.ndarray, sel: Selection) -> np.ndarray:
        """``data`` (TZCYX) with each axis absent from storage repeated as often as ``sel`` picks its one
        index (``c=[0, 0]`` on an image without channels)."""
        for dim, letter in enumerate(_CANONICAL):
            n = len(sel.axis(letter))
            if letter not in self.targets and n != 1:
                data = np.repeat(data, n, axis=dim)
        return data

    def to_canonical(self, data: np.ndarray) -> np.ndarray:
        """A storage-order array as TZCYX (absent axes added with length 1)."""
        missing = "".join(a for a in _CANONICAL if a not in self.targets)
        full = data.reshape(data.shape + (1,) * len(missing))
        order = self.targets + missing
        return full.transpose([order.index(a) for a in _CANONICAL])
