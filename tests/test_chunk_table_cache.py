"""An image's chunk table is built once per opened dataset (one version of its files) and shared by every scan
of it; a dataset rewritten in place is a new version: its scans read the new chunking, never the old table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ome_arrow_core import OMEArrow


def test_scans_of_one_version_share_its_chunk_table_and_a_rewrite_gets_its_own(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    first = rng.integers(0, 4096, (2, 3, 40, 50), dtype=np.uint16)  # ZCYX
    out = tmp_path / "p.ome.parquet"
    OMEArrow(first, "ZCYX").export("parquet", out, chunk_shape=(1, 16, 16))
    a, b = OMEArrow.scan(out), OMEArrow.scan(out)
    assert a.source._chunks is b.source._chunks
    crop = {"z": 1, "c": 2, "roi": (7, 9, 30, 20), "layout": "YX"}
    np.testing.assert_array_equal(a.tensor_view(**crop).to_numpy(), first[1, 2, 9:29, 7:37])

    second = rng.integers(0, 4096, (2, 3, 40, 50), dtype=np.uint16)
    OMEArrow(second, "ZCYX").export("parquet", out, chunk_shape=(1, 25, 10))  # same path, other chunking
    c = OMEArrow.scan(out)
    assert c.source._chunks is not a.source._chunks
    assert c.source._chunks.shape.max(axis=0).tolist() == [1, 1, 1, 25, 10]
    np.testing.assert_array_equal(c.tensor_view(**crop).to_numpy(), second[1, 2, 9:29, 7:37])
    np.testing.assert_array_equal(c.tensor_view(layout="TZCYX").to_numpy(), second[None])
