"""bioio dimensions to ome-arrow-core's TZCYX, and a selection to a lazy bioio index.

``T Z C Y X`` keep their meaning. Samples ``S`` (the colour components of an RGB(A) pixel)
become channels: channel ``i`` is bioio's channel ``i // S``, sample ``i % S`` (with one bioio
channel, the channels are the samples). Any other dimension (``M``, mosaic tiles bioio did
not stitch) of length 1 is dropped; a longer one takes the place of T, else Z, when that axis
has length 1, and is refused otherwise. Y and X must be present.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ome_arrow_core import Selection
from ome_arrow_core.plugin_api import SchemaError

__all__ = ["DimMap"]

_KNOWN = "TZCYXS"


@dataclass(frozen=True)
class DimMap:
    """``roles[i]`` is what bioio dimension ``i`` (of ``order``) becomes: T, Z, C, S, Y, X or "" (dropped)."""

    order: str
    shape: tuple[int, ...]
    roles: tuple[str, ...]

    @classmethod
    def from_bioio(cls, order: str, shape: Sequence[int], where: str) -> DimMap:
        """Map bioio's ``dims.order`` of ``shape``; SchemaError naming ``where`` when it cannot map."""
        roles = [d if d in _KNOWN else "" for d in order]
        if "Y" not in roles or "X" not in roles or len(set(order)) != len(order):
            raise SchemaError(
                f"{where}: bioio dims {order!r} {tuple(shape)} lack Y or X (or repeat a letter); "
                "expected at least Y and X"
            )
        for i, d in enumerate(order):
            if d in _KNOWN or shape[i] == 1:
                continue
            free = [a for a in "TZ" if a not in order or shape[order.index(a)] == 1]
            if not free:
                raise SchemaError(
                    f"{where}: bioio dimension {d!r} of length {shape[i]} has no free axis to map "
                    f"to (dims {order!r} {tuple(shape)}; T and Z are both longer than 1)"
                )
            if free[0] in order:
                roles[order.index(free[0])] = ""
            roles[i] = free[0]
        return cls(order, tuple(int(n) for n in shape), tuple(roles))

    def length(self, role: str) -> int:
        """Length of the bioio dimension playing ``role`` (1 when none does)."""
        return self.shape[self.roles.index(role)] if role in self.roles else 1

    @property
    def samples(self) -> int:
        """Samples per pixel (1 without an S dimension)."""
        return self.length("S")

    def sizes(self) -> dict[str, int]:
        """TZCYX sizes; C counts channels times samples."""
        return {
            "T": self.length("T"),
            "Z": self.length("Z"),
            "C": self.length("C") * self.samples,
            "Y": self.length("Y"),
            "X": self.length("X"),
        }

    @property
    def mapping(self) -> str:
        """``"TCZYXS->TCZYXC"``: each bioio dimension and what it became (``-`` for dropped)."""
        return f"{self.order}->" + "".join("C" if r == "S" else (r or "-") for r in self.roles)

    def read(self, data: Any, sel: Selection) -> Any:
        """The lazy bioio array ``data`` indexed for ``sel`` (one fancy index at a time), and a function
        that turns its computed pixels into TZCYX of ``sel.shape``."""
        s = self.samples
        chans = list(sel.axis("C"))
        need = {"C": sorted({i // s for i in chans}), "S": sorted({i % s for i in chans})}
        basic: list[Any] = []
        fancy: list[tuple[int, Sequence[int]]] = []
        kept: list[str] = []
        for role in self.roles:
            if not role:
                basic.append(0)
                continue
            ix: Sequence[int] = need[role] if role in need else sel.axis(role)
            if isinstance(ix, range) and ix.step > 0:
                basic.append(slice(ix.start, ix.stop, ix.step))
            elif list(ix) == list(range(ix[0], ix[-1] + 1)):
                basic.append(slice(ix[0], ix[-1] + 1))
            else:
                basic.append(slice(None))
                fancy.append((len(kept), list(ix)))
            kept.append(role)
        out = data[tuple(basic)]
        for axis, ix in fancy:
            out = out[(slice(None),) * axis + (np.asarray(ix, dtype=np.int64),)]
        return out, _Finish(tuple(kept), need["C"], need["S"], s, sel)


@dataclass(frozen=True)
class _Finish:
    """Computed pixels (dims ``kept``) to TZCYX: absent axes added and repeated, channels picked."""

    kept: tuple[str, ...]
    have_c: list[int]
    have_s: list[int]
    samples: int
    sel: Selection

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        order = "TZCSYX"
        missing = [r for r in order if r not in self.kept]
        full = arr.reshape(arr.shape + (1,) * len(missing))
        roles = list(self.kept) + missing
        full = full.transpose([roles.index(r) for r in order])
        for dim, role in ((0, "T"), (1, "Z"), (4, "Y"), (5, "X")):
            if role in missing and len(self.sel.axis(role)) != 1:
                full = np.repeat(full, len(self.sel.axis(role)), axis=dim)
        chans = list(self.sel.axis("C"))
        ci = [self.have_c.index(i // self.samples) if "C" in self.kept else 0 for i in chans]
        si = [self.have_s.index(i % self.samples) if "S" in self.kept else 0 for i in chans]
        if len(set(si)) == 1:  # one sample (no S, or one picked): a view, and a gather along C only if needed
            one = full[:, :, :, si[0]]
            return one if ci == list(range(one.shape[2])) else np.take(one, ci, axis=2)
        return full[:, :, np.asarray(ci, dtype=np.int64), np.asarray(si, dtype=np.int64)]
