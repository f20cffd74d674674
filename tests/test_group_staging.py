"""A stream group packed into one host buffer for ``Exporter.export_many`` (the CuPy and torch CUDA exporters)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ome_arrow_core.plugin_api import GROUP_ALIGN, gather_group, group_offsets


def test_offsets_are_aligned_in_order() -> None:
    assert group_offsets([]) == ([], 0)
    assert group_offsets([0, 0]) == ([0, 0], 0)
    assert group_offsets([1, 300, 256, 0, 5]) == ([0, 256, 768, 1024, 1024], 1029)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_gather_packs_strided_views_at_aligned_offsets(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(["bool", "uint8", "uint16", "int32", "float64"]))
    base = (np.arange(9 * 11 * 3) % 251).astype(dtype).reshape(9, 11, 3)
    hosts = []
    for _ in range(data.draw(st.integers(1, 6))):
        y0, x0 = data.draw(st.integers(0, 8)), data.draw(st.integers(0, 10))
        y1, x1 = data.draw(st.integers(y0, 9)), data.draw(st.integers(x0, 11))
        hosts.append(base[y0:y1, x0:x1].transpose(2, 0, 1) if data.draw(st.booleans()) else base[y0:y1, x0:x1])
    offsets, total = group_offsets([h.nbytes for h in hosts])
    assert all(off % GROUP_ALIGN == 0 for off in offsets)
    staging = np.full(total, 0xEE, np.uint8)
    gather_group(staging, hosts, offsets)
    for h, off in zip(hosts, offsets):
        got = staging[off : off + h.nbytes].view(h.dtype).reshape(h.shape)
        np.testing.assert_array_equal(got, h)
    ends = [off + h.nbytes for h, off in zip(hosts, offsets)]
    assert all(end <= nxt for end, nxt in zip(ends, offsets[1:]))  # no two views share a byte
