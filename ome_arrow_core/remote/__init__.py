"""Object storage and URLs: datasets, files and chunks read by byte range, written data first and commit last.

This module is the package's one door; the modules inside are its implementation:

- :mod:`.ranges`: one ranged GET of an object (a size known up front saves the lookup);
- :mod:`.chunks`: a remote dataset's chunk files, read page by page through ranged GETs;
- :mod:`.writes`: one file written locally, then uploaded and moved into place;
- :mod:`.puts`: conditional puts (create-only, If-Match) that make commits atomic on S3.

The typed-chunk format's remote side (a dataset's tables mirrored on open; dataset directories written data
first, manifest last) is :mod:`..typed_chunk.remote_mirror` and :mod:`..typed_chunk.remote_writes`. What a URI
is and how it resolves lives in :mod:`..uris` and :mod:`..location`; how a store's refusals become
:class:`~ome_arrow_core.errors.StorageError` in :mod:`..remote_errors`.
"""

from __future__ import annotations

from .chunks import SIDECAR, MirrorSource, mirror_source, refuse_placeholder, remote_chunk, write_sidecar
from .puts import LostRace, ObjectPuts
from .ranges import get_range, open_known
from .writes import remote_file, upload_directory

__all__ = [
    "get_range",
    "open_known",
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
