"""The options ``export("ome-tiff" | "tiff", out, **options)`` accepts, checked before anything is written.

The TIFF writer takes the options in :data:`ACCEPTED`; those tifffile would take but the writer sets
itself (:data:`OWN`) and any other name raise :class:`~ome_arrow_core.errors.ArgumentError` naming the
option and what is accepted. Values are checked here too, so a wrong one never reaches tifffile.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ome_arrow_core.plugin_api import ArgumentError

__all__ = ["ACCEPTED", "OWN", "TiffOptions", "check_options"]

#: Every option of the TIFF writer, with what it takes.
ACCEPTED: Final[dict[str, str]] = {
    "ome": "True (OME-TIFF, default) or False (plain TIFF)",
    "tile": "(height, width), multiples of 16: tiles instead of strips",
    "chunk_shape": "(height, width): the same as tile=",
    "compression": "a TIFF compression name such as 'zlib', 'zstd', 'lzw', 'lzma', or None",
    "compressionargs": "a dict of the codec's arguments, e.g. {'level': 9}",
    "predictor": "True or a predictor name ('horizontal', 'floatingpoint'), with compression=",
    "levels": "an int >= 1: pyramid levels (OME-TIFF)",
    "lossy": "True to write pixels a lossy codec changed (default False: refused)",
    "bigtiff": "True or False",
    "byteorder": "'<' or '>'",
    "rowsperstrip": "an int >= 1",
    "datetime": "True, a datetime or a 'YYYY:MM:DD HH:MM:SS' string",
    "maxworkers": "an int >= 1: threads that compress",
}
#: tifffile options the writer sets itself.
OWN: Final[frozenset[str]] = frozenset(
    {"metadata", "photometric", "planarconfig", "software", "description", "resolution", "resolutionunit"}
    | {"subfiletype", "subifds", "shape", "dtype", "data", "imagej", "bitspersample", "extrasamples"}
)


@dataclass(frozen=True)
class TiffOptions:
    """Checked writer options: the writer's own and those passed on to tifffile (``passed``)."""

    ome: bool = True
    tile: tuple[int, int] | None = None
    compression: str | None = None
    levels: int = 1
    lossy: bool = False
    passed: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The options that shape the file's bytes, as ``name=value`` text (for error messages)."""
        shown = {"compression": self.compression, "tile": self.tile, **self.passed}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items() if v is not None) or "default options"


def _refuse(name: str, value: object, expected: str) -> ArgumentError:
    return ArgumentError(f"TIFF writer option {name}={value!r} is invalid: expected {expected}")


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _refuse(name, value, "True or False")
    return value


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _refuse(name, value, ACCEPTED[name])
    return value


def _tile(name: str, value: object) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 and v % 16 == 0 for v in value):
            return (int(value[0]), int(value[1]))
    raise _refuse(name, value, "(height, width), two positive multiples of 16 (TIFF tiles), or None for strips")


def _compression(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        raise _refuse(
            "compression", value, "a name; give the level apart, e.g. compression='zlib', compressionargs={'level': 9}"
        )
    if not isinstance(value, str):
        raise _refuse("compression", value, ACCEPTED["compression"])
    import tifffile

    try:
        known = tifffile.enumarg(tifffile.COMPRESSION, "ADOBE_DEFLATE" if value.upper() == "ZLIB" else value)
    except ValueError:
        raise _refuse(
            "compression", value, "a TIFF compression tifffile knows, e.g. 'zlib', 'zstd', 'lzw' or None"
        ) from None
    return None if known == tifffile.COMPRESSION.NONE else value.lower()


def _passed(name: str, value: object, compression: str | None) -> object:
    """``value`` of tifffile option ``name``, checked."""
    if name in ("rowsperstrip", "maxworkers"):
        return _positive(name, value)
    if name == "bigtiff":
        return _bool(name, value)
    if name == "byteorder" and value not in ("<", ">"):
        raise _refuse(name, value, ACCEPTED[name])
    if name == "compressionargs" and not isinstance(value, Mapping):
        raise _refuse(name, value, ACCEPTED[name])
    if name == "datetime" and not isinstance(value, bool | str | dt.datetime):
        raise _refuse(name, value, ACCEPTED[name])
    if name == "predictor" and value not in (False, None) and compression is None:
        raise ArgumentError(
            f"TIFF writer option predictor={value!r} needs a compression: a predictor only helps a codec; "
            "pass compression='zlib' (or 'zstd', 'lzw', ...) with it, or leave predictor out"
        )
    return value


def check_options(options: Mapping[str, Any]) -> TiffOptions:
    """``options`` of ``export("ome-tiff" | "tiff", ...)`` checked; ArgumentError naming a wrong one."""
    for name in options:
        if name in OWN:
            raise ArgumentError(
                f"TIFF writer option {name}= is set by the writer itself (from the image and its metadata) "
                f"and cannot be passed; leave it out. Accepted options: {', '.join(ACCEPTED)}"
            )
        if name not in ACCEPTED:
            raise ArgumentError(
                f"the TIFF writer has no option {name!r}; accepted options: {', '.join(ACCEPTED)} "
                "(an existing file is always replaced, atomically)"
            )
    if options.get("tile") is not None and options.get("chunk_shape") is not None:
        raise ArgumentError("TIFF writer options tile= and chunk_shape= are the same; pass one of them")
    tile = _tile("tile", options.get("tile")) or _tile("chunk_shape", options.get("chunk_shape"))
    compression = _compression(options.get("compression"))
    own = ("ome", "tile", "chunk_shape", "compression", "levels", "lossy")
    passed = {k: _passed(k, v, compression) for k, v in options.items() if k not in own and v is not None}
    return TiffOptions(
        ome=_bool("ome", options.get("ome", True)),
        tile=tile,
        compression=compression,
        levels=options.get("levels", 1),  # checked against the image's sizes by check_levels
        lossy=_bool("lossy", options.get("lossy", False)),
        passed=passed,
    )
