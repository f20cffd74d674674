"""Object storage and URLs: datasets, files and chunks read by byte range, written data first and commit last.

This module is the package's one door; the modules inside are its implementation:

- :mod:`.ranges`: one ranged GET of an object (a size known up front saves the lookup);
- :mod:`.fetches`: several ranged GETs of one object in flight at once (a batch's runs);
- :mod:`.chunks`: a remote dataset's chunk files, read page by page through ranged GETs;
- :mod:`.writes`: one file written locally, then uploaded and moved into place;
- :mod:`.puts`: conditional puts (create-only, If-Match) that make commits atomic on S3.

The typed-chunk format's remote side (a dataset's tables mirrored on open; dataset directories written data
first, manifest last) is :mod:`..typed_chunk.remote_mirror` and :mod:`..typed_chunk.remote_writes`. What a URI
is and how it resolves lives in :mod:`..uris` and :mod:`..location`; how a store's refusals become
:class:`~ome_arrow_core.errors.StorageError` in :mod:`..remote_errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ..doors import lazy_names

if TYPE_CHECKING:
    from .chunks import SIDECAR, MirrorSource, mirror_source, refuse_placeholder, remote_chunk, write_sidecar
    from .fetches import fetch_spans
    from .puts import LostRace, ObjectPuts
    from .ranges import get_range, open_known
    from .writes import remote_file, upload_directory

__all__ = [
    "get_range",
    "open_known",
    "fetch_spans",
    "remote_chunk",
    "refuse_placeholder",
    "SIDECAR",
    "MirrorSource",
    "mirror_source",
    "write_sidecar",
    "remote_file",
    "upload_directory",
    "LostRace",
    "ObjectPuts",
]

#: Each name of the door: (module, name in it), imported on first use (see :mod:`..doors`): a read loads
#: neither the uploads nor the conditional puts.
_WHERE: Final[dict[str, tuple[str, str]]] = {
    "SIDECAR": (".chunks", "SIDECAR"),
    "MirrorSource": (".chunks", "MirrorSource"),
    "mirror_source": (".chunks", "mirror_source"),
    "refuse_placeholder": (".chunks", "refuse_placeholder"),
    "remote_chunk": (".chunks", "remote_chunk"),
    "write_sidecar": (".chunks", "write_sidecar"),
    "LostRace": (".puts", "LostRace"),
    "ObjectPuts": (".puts", "ObjectPuts"),
    "fetch_spans": (".fetches", "fetch_spans"),
    "get_range": (".ranges", "get_range"),
    "open_known": (".ranges", "open_known"),
    "remote_file": (".writes", "remote_file"),
    "upload_directory": (".writes", "upload_directory"),
}

__getattr__ = lazy_names(__name__, _WHERE)
