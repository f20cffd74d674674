"""Sizes a struct record declares, checked against the payload it carries before any output is allocated.

A record's header says its sizes (T, C, Z, Y, X) and its planes or chunks carry the pixels.
A few KB can claim 60000x60000 pixels; decoding would allocate the whole image first. Each
plane holds Y*X values, each chunk its shape's product, so the payload must hold at least
the declared pixel count (compressed chunk bytes at most their codec's largest ratio).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from ..arrow_numpy import binary_lengths, int_column, int_values
from ..errors import DamagedFileError
from ..meta import ImageMeta

__all__ = ["check_record_sizes"]

#: Largest ratio of decompressed to compressed bytes each codec can reach (with margin);
#: codecs not listed (brotli, bz2) are not bounded.
MAX_RATIO = {"lz4": 256, "lz4_raw": 256, "lz4_frame": 256, "snappy": 64, "gzip": 1100, "zstd": 1 << 16}


def _pixel_counts(items: pa.StructArray) -> np.ndarray:
    """Values in each item's ``pixels`` list (from offsets, no copy of the values)."""
    offsets = int_values(items.field("pixels").offsets).astype(np.int64)  # np.asarray would import pandas
    return np.diff(offsets)


def check_record_sizes(
    meta: ImageMeta, planes: pa.StructArray | None, chunks: pa.StructArray | None, *, samples: int = 1
) -> None:
    """Raise DamagedFileError unless the payload of a record can hold the pixels ``meta`` declares.

    ``samples``: values per pixel each chunk list holds (interleaved samples; ``meta`` is then
    widened to ``X * samples`` by the caller).
    """
    sizes = [int(meta.sizes[a]) for a in "TCZYX"]
    if any(v < 0 for v in sizes):
        raise DamagedFileError(f"the record declares sizes {meta.sizes}; sizes cannot be negative")
    total = math.prod(sizes)
    T, C, Z, Y, X = sizes
    if chunks is not None:
        shapes = [int_column(chunks.field(f"shape_{a}")) for a in "zyx"]  # a null extent reads 0: refused below
        if any(int(s.min(initial=1)) < 1 for s in shapes):
            raise DamagedFileError("a chunk of the record declares an extent below 1; every extent must be at least 1")
        declared = shapes[0] * shapes[1] * shapes[2] * samples
        if chunks.type.get_field_index("pixel_bytes") >= 0:
            carried = _byte_capacity(chunks, declared, meta.dtype.itemsize)
        else:
            counts = _pixel_counts(chunks)
            bad = np.nonzero(counts != declared)[0]
            if len(bad):
                i = int(bad[0])
                raise DamagedFileError(
                    f"chunk {i} of the record holds {int(counts[i])} values, its shape says {int(declared[i])}"
                )
            carried = int(counts.sum())
    elif planes is not None:
        carried = int(_pixel_counts(planes).sum())
        if carried != len(planes) * Y * X:
            raise DamagedFileError(
                f"the record's planes hold {carried} values; expected {len(planes)} planes of {Y}x{X}"
            )
        if len(planes) < T * Z * C:
            t0, z0, c0 = _first_missing(planes, T, Z, C)
            raise DamagedFileError(
                f"record has {len(planes)} planes but none for t={t0}, z={z0}, c={c0}; expected all {T * Z * C} (T*Z*C)"
            )
    else:
        return
    if carried < total:  # a missing chunk would read as whatever memory held before
        what = "chunks cover" if chunks is not None else "planes hold"
        raise DamagedFileError(
            f"the record's {what} {carried} pixels; its sizes need {total} ({T}x{C}x{Z}x{Y}x{X}, TCZYX): the "
            "record is damaged or lying about its sizes"
        )


def _byte_capacity(chunks: pa.StructArray, declared: np.ndarray, itemsize: int) -> int:
    """Pixels the ``pixel_bytes`` of ``chunks`` can hold: exact when stored raw, bounded by the codec's ratio."""
    stored = binary_lengths(chunks.field("pixel_bytes"))
    names = {chunks.type.field(i).name for i in range(chunks.type.num_fields)}
    codecs = chunks.field("compression").to_pylist() if "compression" in names else [None] * len(chunks)
    dtypes = chunks.field("dtype").to_pylist() if "dtype" in names else [None] * len(chunks)
    carried = 0
    for i, (codec, n) in enumerate(zip(codecs, stored.tolist())):
        size = np.dtype(dtypes[i]).itemsize if dtypes[i] else itemsize
        need = int(declared[i]) * size
        if codec:
            ratio = MAX_RATIO.get(str(codec).lower())
            if ratio is not None and need > n * ratio:
                raise DamagedFileError(
                    f"chunk {i} of the record declares {need} bytes but holds {n} {codec}-compressed bytes, more "
                    f"than {codec} can expand to ({ratio}x); the record is damaged or lying about its sizes"
                )
        elif n != need:
            raise DamagedFileError(f"chunk {i} of the record holds {n} bytes, its shape and dtype need {need}")
        carried += int(declared[i])
    return carried


def _first_missing(planes: pa.StructArray, T: int, Z: int, C: int) -> tuple[int, int, int]:
    """The first (t, z, c) in C order that no plane has (there are fewer planes than T*Z*C)."""
    have = set(zip(*(planes.field(a).to_pylist() for a in "tzc")))
    for k in range(len(planes) + 1):
        t, rest = divmod(k, Z * C)
        z, c = divmod(rest, C)
        if (t, z, c) not in have:
            return t, z, c
    raise AssertionError("unreachable: more planes than positions")
