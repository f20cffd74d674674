"""Requests and bytes a remote struct-record read costs, counted by the servers themselves.

One lookup (whose size opens the file without another), the footer, and one coalesced ranged GET of the row group that holds the image:
a crop, a plane and the whole image of a one-record file cost the same (Parquet cannot split
one record's pixel column); in a many-row table a crop of one row fetches only its row group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from servers import HTTPServer, RequestLog, S3Server, serve

from ome_arrow_core import OMEArrow
from ome_arrow_core.meta import ImageMeta
from ome_arrow_core.record import pixels_to_record

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SELECTIONS: dict[str, Callable[[OMEArrow], np.ndarray]] = {
    "crop": lambda img: img.tensor_view(t=0, z=1, roi=(5, 7, 20, 11), layout="CYX").to_numpy(),
    "plane": lambda img: img.tensor_view(t=0, z=2, c=1, layout="YX").to_numpy(),
    "whole": lambda img: img.to_numpy(),
}


def _count(log: RequestLog, name: str) -> tuple[Counter[str], int]:
    reqs = log.requests(name)
    return Counter(m for m, *_ in reqs), sum(n for *_, n in reqs)


@pytest.mark.parametrize("where", ["s3", "http"])
@pytest.mark.parametrize("what", sorted(SELECTIONS))
def test_one_record_file_costs_a_lookup_the_footer_and_one_ranged_get(
    tmp_path: Path, where: str, what: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    arr = np.random.default_rng(0).integers(0, 60000, (1, 4, 3, 96, 128), dtype=np.uint16)
    local = tmp_path / "img.ome.parquet"
    OMEArrow(arr, "TZCYX").export("parquet", local, layout="record")
    size = local.stat().st_size
    name = f"{what}.ome.parquet"
    uri, log = serve(where, name, local.read_bytes(), s3_server, http_server, monkeypatch, bucket="counted")
    log.clear()
    img = OMEArrow(uri)
    got = SELECTIONS[what](img)
    assert img.info()["file_bytes"] == size
    np.testing.assert_array_equal(got, SELECTIONS[what](OMEArrow(arr, "TZCYX")))
    methods, sent = _count(log, name)
    # our lookup (its size opens the file: no second HEAD); the footer; the row group's column chunks in one GET
    assert methods == Counter(HEAD=1, GET=2), log.requests(name)
    assert sent <= size + (64 << 10)  # the footer's 64 KiB tail read may overlap the row group


@pytest.mark.parametrize("where", ["s3", "http"])
def test_a_crop_of_one_row_fetches_only_its_row_group(
    tmp_path: Path, where: str, s3_server: S3Server, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 32
    arrays = [np.random.default_rng(i).integers(0, 60000, (1, 1, 2, 96, 96), dtype=np.uint16) for i in range(rows)]
    records = [pixels_to_record(ImageMeta(sizes=dict(zip("TZCYX", a.shape)), dtype=a.dtype), a) for a in arrays]
    local = tmp_path / "table.parquet"
    pq.write_table(pa.table({"ome_arrow": pa.concat_arrays(records)}), local, row_group_size=1, compression="none")
    size = local.stat().st_size
    uri, log = serve(where, "table.parquet", local.read_bytes(), s3_server, http_server, monkeypatch, bucket="counted")
    log.clear()
    crop = OMEArrow(uri, row=11).tensor_view(c=1, roi=(10, 20, 30, 40), layout="YX").to_numpy()
    np.testing.assert_array_equal(crop, arrays[11][0, 0, 1, 20:60, 10:40])
    methods, sent = _count(log, "table.parquet")
    # the footer (over 64 KiB here: a 64 KiB tail, then only its missing front) and row group 11 in one GET
    assert methods == Counter(HEAD=1, GET=3), log.requests("table.parquet")
    spans = sorted((start, start + n) for m, _, start, n in log.requests("table.parquet") if m == "GET")
    assert all(a[1] <= b[0] for a, b in pairwise(spans)), spans  # no byte fetched twice
    md = pq.ParquetFile(local).metadata
    group = sum(md.row_group(11).column(c).total_compressed_size for c in range(md.num_columns))
    assert sent < size / 8 and sent == group + md.serialized_size + 8, (sent, group, md.serialized_size)
