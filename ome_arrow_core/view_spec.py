"""ViewSpec: the view arguments (which indices, which crop, which layout, which dtype), checked once.

``OMEArrow.tensor_view``, ``OMEArrowDataset.tensor_views`` and ``OMEArrowDataset.read``
(and the torch and Ray datasets) take the same keywords; each builds one ViewSpec from
them (or takes it as ``spec=``), so they are validated in one place and mean the same
everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import TYPE_CHECKING, Any, get_args

import numpy as np

from .casting import Casting, check_casting
from .dtypes import check_dtype
from .errors import ArgumentError, LayoutError, SelectionError
from .frozen_types import frozen
from .layout import ChannelPolicy, default_layout, normalize_axes
from .selection import IndexSpec, RoiType, Selection, resolve_selection

if TYPE_CHECKING:
    from .meta import ImageMeta

__all__ = ["ViewSpec", "ROI_TYPES", "CHANNEL_POLICIES", "channels_read"]

ROI_TYPES: tuple[str, ...] = get_args(RoiType)
CHANNEL_POLICIES: tuple[str, ...] = get_args(ChannelPolicy)
#: :meth:`ViewSpec.selection`'s answers by what they depend on (plain arguments only), cleared when full.
_SELECTIONS: dict[tuple[Any, ...], Selection] = {}
_SELECTIONS_KEPT = 4096
#: The fields, in order.
_FIELDS: tuple[str, ...] = (
    "t",
    "z",
    "c",
    "roi",
    "roi3d",
    "roi_nd",
    "roi_type",
    "tile",
    "layout",
    "dtype",
    "channel_policy",
    "casting",
)
#: Each field's value when the caller does not give it.
_DEFAULTS: dict[str, str] = {"channel_policy": "error", "casting": "checked"}


def _given(name: str, value: Any) -> bool:
    """True when ``value`` is not the default of field ``name`` (arrays compare by identity only)."""
    if value is None:
        return False
    default = _DEFAULTS.get(name)
    return default is None or not (isinstance(value, str) and value == default)


@frozen
class ViewSpec:
    """The arguments of a view, validated on construction (image-independent checks only).

    ``t``, ``z``, ``c``: an int, a slice or a sequence of indices; ``roi=(x, y, w, h)``,
    ``roi3d=(x, y, z, w, h, d)``, ``roi_nd`` (with ``roi_type``) or ``tile=(ty, tx)``: one
    crop at most; ``layout``: the output axes (default: CYX for one T and one Z, else
    TZCYX); ``dtype`` with ``casting``: an explicit cast; ``channel_policy="first"`` keeps
    channel 0 when the layout drops C. Checks that need the image (indices in range, crops
    that fit) run in :meth:`selection`.
    """

    t: IndexSpec = None
    z: IndexSpec = None
    c: IndexSpec = None
    roi: Sequence[int] | None = None
    roi3d: Sequence[int] | None = None
    roi_nd: Sequence[int] | None = None
    roi_type: RoiType | None = None
    tile: Sequence[int] | None = None
    layout: str | None = None
    dtype: Any = None
    channel_policy: ChannelPolicy = "error"
    casting: Casting = "checked"

    # __init__, __eq__ and __hash__ written as ``dataclass`` would generate them (it compiles them in every
    # process: ~1 ms of a fresh process's first read; tests compare them with dataclass's).
    def __init__(
        self,
        t: IndexSpec = None,
        z: IndexSpec = None,
        c: IndexSpec = None,
        roi: Sequence[int] | None = None,
        roi3d: Sequence[int] | None = None,
        roi_nd: Sequence[int] | None = None,
        roi_type: RoiType | None = None,
        tile: Sequence[int] | None = None,
        layout: str | None = None,
        dtype: Any = None,
        channel_policy: ChannelPolicy = "error",
        casting: Casting = "checked",
    ) -> None:
        values = (t, z, c, roi, roi3d, roi_nd, roi_type, tile, layout, dtype, channel_policy, casting)
        self.__dict__.update(zip(_FIELDS, values))  # one store, not twelve object.__setattr__ calls (every view)
        self.__post_init__()

    def _values(self) -> tuple[Any, ...]:
        return (
            self.t,
            self.z,
            self.c,
            self.roi,
            self.roi3d,
            self.roi_nd,
            self.roi_type,
            self.tile,
            self.layout,
            self.dtype,
            self.channel_policy,
            self.casting,
        )

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __post_init__(self) -> None:
        crops = (("roi", self.roi), ("roi3d", self.roi3d), ("roi_nd", self.roi_nd), ("tile", self.tile))
        given = [k for k, v in crops if v is not None]
        if len(given) > 1:
            raise SelectionError(f"pass only one of roi, roi3d, roi_nd and tile; got {', '.join(given)}")
        if self.roi_type is not None and self.roi_type not in ROI_TYPES:
            raise SelectionError(f"roi_type must be '2d', '2d_timelapse', '3d' or '4d', got {self.roi_type!r}")
        if self.layout is not None:
            normalize_axes(self.layout)
        if self.dtype is not None:
            check_dtype(self.dtype)
        if self.channel_policy not in CHANNEL_POLICIES:
            raise LayoutError(f"channel_policy must be 'error' or 'first', got {self.channel_policy!r}")
        check_casting(self.casting)

    @classmethod
    def of(cls, spec: ViewSpec | None = None, **keywords: Any) -> ViewSpec:
        """``spec`` if given (then every keyword must be left at its default), else ``ViewSpec(**keywords)``."""
        if spec is None:
            return cls(**keywords)
        if not isinstance(spec, ViewSpec):
            raise ArgumentError(f"spec must be a ViewSpec, got {type(spec).__name__}")
        clash = sorted(k for k, v in keywords.items() if _given(k, v))
        if clash:
            raise ArgumentError(
                f"pass the view as keywords or as spec=, not both: got spec= and {', '.join(clash)}; "
                "use spec.replace(...) to change a spec"
            )
        return spec

    def replace(self, **changes: Any) -> ViewSpec:
        """A copy with ``changes`` (validated again)."""
        return replace(self, **changes)

    @property
    def cast(self) -> np.dtype | None:
        """The dtype to cast to (None: keep the stored dtype)."""
        return None if self.dtype is None else check_dtype(self.dtype)

    def keywords(self) -> dict[str, Any]:
        """The fields given (not at their default), as keywords for the view functions."""
        return {f.name: getattr(self, f.name) for f in fields(self) if _given(f.name, getattr(self, f.name))}

    def selection(self, base: Selection, meta: ImageMeta) -> Selection:
        """Narrow ``base`` (indices relative to it) by t, z, c and the crop; SelectionError if out of range.

        Answers for plain arguments (ints, tuples of ints) are remembered (:data:`_SELECTIONS`): a crop asked
        again and again (an image opened anew and cropped, the same tile of every image) is a dict lookup."""
        key = self._plain_key(base, meta)
        if key is not None:
            hit = _SELECTIONS.get(key)
            if hit is not None:
                return hit
        sel = resolve_selection(
            base,
            meta,
            t=self.t,
            z=self.z,
            c=self.c,
            roi=self.roi,
            roi3d=self.roi3d,
            roi_nd=self.roi_nd,
            roi_type=self.roi_type,
            tile=self.tile,
        )
        if key is not None:
            if len(_SELECTIONS) >= _SELECTIONS_KEPT:
                _SELECTIONS.clear()
            _SELECTIONS[key] = sel
        return sel

    def _plain_key(self, base: Selection, meta: ImageMeta) -> tuple[Any, ...] | None:
        """What :meth:`selection`'s answer depends on (``base``, the index and crop arguments, the chunk shape that
        sizes tiles), when every argument is None, an ``int`` or a tuple of ``int`` (exact types: ``True`` and
        ``0.0`` equal ``1`` and ``0`` but are checked apart), else None (not remembered)."""
        args = (self.t, self.z, self.c, self.roi, self.roi3d, self.roi_nd, self.tile)
        for v in args:
            if v is not None and type(v) is not int and not (type(v) is tuple and all(type(i) is int for i in v)):
                return None
        if self.roi_type is not None and type(self.roi_type) is not str:
            return None
        return (base, *args, self.roi_type, meta.chunk_shape if self.tile is not None else None)

    def layout_for(self, sel: Selection) -> str:
        """The layout of a view of ``sel``: :attr:`layout` as given, or the default for its T and Z."""
        return self.layout if self.layout is not None else default_layout(len(sel.t), len(sel.z))


def channels_read(sel: Selection, layout: str, channel_policy: ChannelPolicy) -> Selection:
    """``sel`` as read: channel 0 only when ``channel_policy="first"`` and ``layout`` drops several channels."""
    if channel_policy == "first" and "C" not in normalize_axes(layout) and len(sel.c) > 1:
        return sel.select(c=0)
    return sel
