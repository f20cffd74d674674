"""Plugin hooks: a reader for every format an installed bioio reader plugin opens (bioio loads on first open).

The bridge is a fallback: its priority (-10) is below every other reader's, so our own TIFF
and Zarr readers keep their suffixes, and ``ome-arrow-core plugins --explain PATH`` says so.
It claims the suffixes in :data:`SUFFIXES`; any other file opens with ``format="bioio"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ome_arrow_core import Reader, SchemaError, hookimpl
from ome_arrow_core.plugin_api import check_row

if TYPE_CHECKING:
    from .source import BioioSource

__all__ = ["PRIORITY", "SUFFIXES", "open_bioio", "ome_arrow_readers"]

#: Below every first-party reader (0 and up): the bridge reads what nothing else claims.
PRIORITY: Final[int] = -10

#: Suffixes the bridge claims: what bioio's reader plugins read (CZI, ND2, LIF, DV, images through
#: bioio-imageio, Bio-Formats' list), and TIFF/Zarr, which go to the bridge only when our own readers are
#: blocked or not installed. Keep in step with ome_arrow_core.first_party (a test checks).
SUFFIXES: Final[tuple[str, ...]] = (
    ".czi",
    ".nd2",
    ".lif",
    ".dv",
    ".r3d",
    ".sldy",
    ".ims",
    ".lsm",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".bmp",
    ".oib",
    ".oif",
    ".vsi",
    ".svs",
    ".ndpi",
    ".lei",
    ".ome.tiff",
    ".ome.tif",
    ".tiff",
    ".tif",
    ".ome.zarr",
    ".zarr",
)


def open_bioio(
    path: Path,
    column: str | None = None,
    row: int = 0,
    *,
    scene: int | str | None = None,
    reader: str | None = None,
    chunk_dims: Sequence[str] | None = None,
    reader_options: dict[str, Any] | None = None,
) -> BioioSource:
    """Open scene ``scene`` (an index or id; default ``row``) of ``path`` with bioio reader plugin ``reader``
    (default: bioio's choice), one plane per chunk unless ``chunk_dims`` says otherwise."""
    if column is not None:
        raise SchemaError(
            f"column={column!r} does not apply to files read through bioio, which have no columns; "
            "pick a scene with scene= (or row=)"
        )
    from .source import BioioSource

    return BioioSource(
        path, scene=scene, row=check_row(row), reader=reader, chunk_dims=chunk_dims, reader_options=reader_options
    )


@hookimpl
def ome_arrow_readers() -> Sequence[Reader]:
    return [
        Reader(
            name="bioio",
            priority=PRIORITY,
            requires=("bioio",),
            extra="bioio",
            suffixes=SUFFIXES,
            open=open_bioio,
            description="any format an installed bioio reader plugin opens (fallback after our own readers)",
        ),
    ]
