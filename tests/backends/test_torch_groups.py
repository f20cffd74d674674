"""The torch CUDA exporter's ``export_many``: a stream group to the GPU in one copy.

Its host side (the group packed by ``plugin_api.group_offsets``/``gather_group``, then cut into one typed tensor
per view by ``split_group``) runs here on the CPU for every dtype; the copy itself needs a CUDA GPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pixels import random_pixels

torch = pytest.importorskip("torch")
ome_arrow_torch = pytest.importorskip("ome_arrow_torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ome_arrow_core import DeviceError, OMEArrow, Registry  # noqa: E402
from ome_arrow_core.dtypes import SUPPORTED  # noqa: E402
from ome_arrow_core.plugin_api import gather_group, group_offsets  # noqa: E402
from ome_arrow_torch.export import export_cuda_many, split_group  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (the group's copy to the device)")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the error raised where CUDA is missing")


def _torch_registry() -> Registry:
    """Built-ins plus the torch plugin only, whatever else is installed (CuPy would win device="cuda")."""
    from ome_arrow_torch import plugin

    reg = Registry(autoload=False)
    reg.register(plugin, name="torch")
    return reg


def test_the_cuda_exporter_has_export_many() -> None:
    found = _torch_registry().resolve_exporter("cuda", np.dtype("uint16"), "torch")
    assert found.name == "torch-cuda" and found.export_many is not None
    assert found.export_many is export_cuda_many


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(SUPPORTED), data=st.data())
def test_a_packed_group_splits_into_each_views_tensor(dtype: str, data: st.DataObject) -> None:
    base = random_pixels((5, 9, 11), dtype)
    hosts = []
    for _ in range(data.draw(st.integers(1, 6))):
        y0, x0 = data.draw(st.integers(0, 9)), data.draw(st.integers(0, 11))
        y1, x1 = data.draw(st.integers(y0, 9)), data.draw(st.integers(x0, 11))
        part = base[:, y0:y1, x0:x1]
        hosts.append(part.transpose(1, 2, 0) if data.draw(st.booleans()) else part[::2])
    offsets, total = group_offsets([h.nbytes for h in hosts])
    flat = torch.empty(total, dtype=torch.uint8)  # the device buffer, here on the CPU
    gather_group(flat.numpy(), hosts, offsets)
    got = split_group(flat, hosts, offsets)
    assert len(got) == len(hosts)
    for t, h in zip(got, hosts, strict=True):
        assert t.dtype == getattr(torch, dtype) and tuple(t.shape) == h.shape and t.is_contiguous()
        np.testing.assert_array_equal(t.numpy(), h)
    if got[0].numel():  # each tensor holds its own bytes: writing one changes no other
        before = [t.clone() for t in got[1:]]
        got[0].view(-1).view(torch.uint8).fill_(0xA5)
        for t, b in zip(got[1:], before, strict=True):
            assert torch.equal(t, b)


@no_cuda
def test_without_cuda_export_many_is_a_device_error() -> None:
    view = OMEArrow(random_pixels((2, 32, 32), "uint16"), registry=_torch_registry()).tensor_view(z=0, layout="YX")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        export_cuda_many([view], device_index=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # export fails as export_many does: no fallback warning
        with pytest.raises(DeviceError, match="CUDA is not available"):
            next(iter(view.iter_dlpack(tile_size=(16, 16), mode="torch", device="cuda")))


@needs_cuda
@pytest.mark.parametrize("dtype", SUPPORTED)
def test_a_cuda_stream_of_tiles_matches_numpy(dtype: str) -> None:
    pixels = random_pixels((2, 48, 40), dtype)
    view = OMEArrow(pixels, "ZYX", registry=_torch_registry()).tensor_view(layout="ZYX")
    tiles = list(view.iter_dlpack(tile_size=(16, 16), mode="torch", device="cuda", prefetch=2))
    assert len(tiles) == 3 * 3
    k = 0
    for y in range(0, 48, 16):
        for x in range(0, 40, 16):
            t = tiles[k]
            assert t.is_cuda and t.is_contiguous() and t.dtype == getattr(torch, dtype)
            np.testing.assert_array_equal(t.cpu().numpy(), pixels[:, y : y + 16, x : x + 16])
            k += 1
    before = tiles[1].clone()
    tiles[0].view(-1).view(torch.uint8).fill_(0xA5)  # tiles of one group share a device buffer, not bytes
    assert torch.equal(tiles[1], before)


@needs_cuda
def test_export_many_direct_on_the_current_stream() -> None:
    pixels = random_pixels((3, 20, 30), "float32")
    img = OMEArrow(pixels, "ZYX", registry=_torch_registry())
    views = [img.tensor_view(z=z, layout="YX") for z in range(3)]
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        got = export_cuda_many(views, device_index=0)
        sums = [float(t.sum()) for t in got]  # on the stream the copy was queued on
    for t, z, s in zip(got, range(3), sums, strict=True):
        np.testing.assert_array_equal(t.cpu().numpy(), pixels[z])
        assert s == pytest.approx(float(pixels[z].sum(dtype=np.float64)), rel=1e-5)
