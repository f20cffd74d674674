"""Reads into an exporter's host memory (``Exporter.host_memory``; ome_arrow_core/host_memory.py).

A lazy view exported to a device whose exporter offers host memory (a GPU's pinned memory) reads its pixels
into that memory, so the exporter copies them from where the read left them. The exporter here is a probe on a
pretend "cuda" device: it records whether the view it was handed lives in memory it allocated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from damage import flip_byte
from test_tile_streams import page_of_tile, pixels, written

import ome_arrow_core
from ome_arrow_core import OMEArrow, Registry, TensorView
from ome_arrow_core.buffers import arrow_empty
from ome_arrow_core.errors import ChecksumError, DamagedFileError, DeviceError, PluginError
from ome_arrow_core.host_memory import HOST_MIN_BYTES, HostBlocks, host_buffer, host_memory


def aligned(nbytes: int) -> np.ndarray:
    """A writable uint8 array of ``nbytes`` at a 64-byte aligned address."""
    raw = np.empty(nbytes + 64, np.uint8)
    at = -raw.ctypes.data % 64
    return raw[at : at + nbytes]


class Probe:
    """A 'cuda' exporter offering host memory (unless ``offers`` is False); records what it allocated and whether
    each view it exported lay in it."""

    def __init__(self, offers: bool = True, allocate: Any = None) -> None:
        self.blocks: list[np.ndarray] = []
        self.in_block: list[bool] = []
        self.offers = offers
        self.allocate = allocate or self._allocate

    def _allocate(self, nbytes: int) -> np.ndarray:
        block = aligned(nbytes)
        self.blocks.append(block)
        return block

    def export(self, view: TensorView, **_: Any) -> np.ndarray:
        host = view.to_numpy()
        self.in_block.append(any(np.shares_memory(host, b) for b in self.blocks))
        return np.array(host, copy=True)

    @ome_arrow_core.hookimpl
    def ome_arrow_exporters(self) -> list[ome_arrow_core.Exporter]:
        return [
            ome_arrow_core.Exporter(
                name="probe",
                devices=("cuda",),
                modes=("probe",),
                priority=100,
                export=self.export,
                host_memory=self.allocate if self.offers else None,
            )
        ]


def scanned(tmp_path: Path, probe: Probe) -> tuple[OMEArrow, np.ndarray]:
    """A 2-plane image (ZCYX 2x1x1024x768 uint16: planes of 1.5 MiB, chunks of 256x256) scanned with ``probe``."""
    a = pixels((2, 1, 1024, 768), "uint16", seed=5)
    reg = Registry()
    reg.register(probe, name="probe")
    tmp_path.mkdir(exist_ok=True)
    return OMEArrow.scan(written(tmp_path, a, (256, 256)), registry=reg), a


@pytest.mark.parametrize("how", ["to_dlpack", "to_dlpack positional", "again"])
def test_a_lazy_view_exported_to_a_device_is_read_into_its_exporters_memory(tmp_path: Path, how: str) -> None:
    probe = Probe()
    img, a = scanned(tmp_path, probe)
    if how == "again":  # a box read before is read again by its plan: into the exporter's memory too
        img.tensor_view(z=1, layout="YX").to_numpy()
    view = img.tensor_view(z=1, layout="YX")
    got = view.to_dlpack("probe", "cuda") if how == "to_dlpack positional" else view.to_dlpack(device="cuda")
    np.testing.assert_array_equal(got, a[1, 0])
    assert [b.nbytes for b in probe.blocks] == [a[1, 0].nbytes] and probe.in_block == [True]
    np.testing.assert_array_equal(probe.blocks[0].view(np.uint16).reshape(a[1, 0].shape), a[1, 0])


def test_the_cpu_small_reads_and_exporters_without_memory_use_arrows_pool(tmp_path: Path) -> None:
    probe = Probe()
    img, a = scanned(tmp_path, probe)
    np.testing.assert_array_equal(np.from_dlpack(img.tensor_view(z=0, layout="YX").to_dlpack()), a[0, 0])
    small = img.tensor_view(z=0, layout="YX", roi=(0, 0, 300, 200))  # 117 KiB < HOST_MIN_BYTES
    np.testing.assert_array_equal(small.to_dlpack(device="cuda"), a[0, 0, :200, :300])
    assert probe.blocks == [] and probe.in_block == [False]
    plain = Probe(offers=False)
    img2, _ = scanned(tmp_path / "b", plain)
    np.testing.assert_array_equal(img2.tensor_view(z=1, layout="YX").to_dlpack(device="cuda"), a[1, 0])
    assert plain.blocks == [] and plain.in_block == [False]


def test_a_collected_view_is_exported_as_it_is(tmp_path: Path) -> None:
    probe = Probe()
    img, a = scanned(tmp_path, probe)
    view = img.tensor_view(z=0, layout="YX")
    view.collect()  # read already (Arrow's memory): exported from there, not read again
    np.testing.assert_array_equal(view.to_dlpack(device="cuda"), a[0, 0])
    assert probe.blocks == [] and probe.in_block == [False]


def test_a_flipped_byte_raises_with_host_memory_too(tmp_path: Path) -> None:
    probe = Probe()
    img, _ = scanned(tmp_path, probe)
    img.to_numpy()  # audited: the damage below is caught by the chunk checksums
    out = tmp_path / "s.ome.parquet"
    off, size = page_of_tile(out, 1, 0, 512, 256)
    flip_byte(out / "chunks.parquet", off + size - 3)
    with pytest.raises(ChecksumError, match="do not match their checksum"):
        img.tensor_view(z=1, layout="YX").to_dlpack(device="cuda")
    assert probe.in_block == []  # nothing reached the exporter


@pytest.mark.parametrize(
    ("allocate", "match"),
    [
        (lambda n: object(), "returned a object, which is not a buffer"),
        (lambda n: bytes(n), "read-only"),
        (lambda n: aligned(n - 1), "at least the bytes asked"),
        (lambda n: aligned(n + 1)[1:], "aligned to 64 bytes"),
    ],
    ids=["not a buffer", "read-only", "short", "misaligned"],
)
def test_an_allocator_that_breaks_its_contract_is_named(tmp_path: Path, allocate: Any, match: str) -> None:
    img, _ = scanned(tmp_path, Probe(allocate=allocate))
    with pytest.raises(PluginError, match=match):
        img.tensor_view(z=0, layout="YX").to_dlpack(device="cuda")


def _raises(exc: BaseException) -> Any:
    def allocate(n: int) -> np.ndarray:
        raise exc

    return allocate


@pytest.mark.parametrize(
    ("exc", "kind", "match"),
    [
        (RuntimeError("no pinned memory allocator"), PluginError, "failed to allocate .*RuntimeError: no pinned"),
        (MemoryError(), PluginError, "failed to allocate .*MemoryError"),
        (DeviceError("CUDA is not available"), DeviceError, "CUDA is not available"),
    ],
    ids=["foreign", "out of memory", "ours"],
)
def test_an_allocator_that_fails_is_blamed_not_the_file(
    tmp_path: Path, exc: BaseException, kind: type[Exception], match: str
) -> None:
    img, a = scanned(tmp_path, Probe(allocate=_raises(exc)))
    view = img.tensor_view(z=0, layout="YX")
    with pytest.raises(kind, match=match) as info:
        view.to_dlpack(device="cuda")
    assert not isinstance(info.value, DamagedFileError)
    np.testing.assert_array_equal(view.to_numpy(), a[0, 0])  # read on the CPU it is whole


def test_host_memory_is_active_only_within_its_block() -> None:
    calls: list[int] = []

    def allocate(n: int) -> np.ndarray:
        calls.append(n)
        return aligned(n)

    assert host_buffer(HOST_MIN_BYTES, 64) is None
    with host_memory(allocate):
        assert host_buffer(HOST_MIN_BYTES - 1, 64) is None
        out, buf = arrow_empty((1024, 1024), np.dtype(np.uint16))
        with host_memory(None):  # nested: Arrow's pool again
            assert host_buffer(HOST_MIN_BYTES, 64) is None
    assert calls == [2 << 20] and out.flags.writeable and buf.size >= out.nbytes
    _, plain = arrow_empty((1024, 1024), np.dtype(np.uint16))
    assert calls == [2 << 20] and plain.address % 64 == 0


# -- HostBlocks: which block an exporter's allocator handed out a view lies in ----------------------------------------
class Owner:
    """What a framework's tensor is to its block: an object the block's array keeps alive."""


def test_host_blocks_find_the_block_an_array_lies_in() -> None:
    blocks = HostBlocks()
    owners = [Owner(), Owner()]
    raw = [aligned(4096), aligned(8192)]
    kept = [blocks.add(r, o) for r, o in zip(raw, owners)]
    assert kept[0] is raw[0] and len(blocks) == 2
    plane = raw[1][1024:].view(np.uint16).reshape(32, 112)
    assert blocks.find(plane) == (1024, owners[1])
    assert blocks.find(raw[0][::2]) == (0, owners[0])  # strided: its span lies in the block
    assert blocks.find(raw[0][::-1]) == (4095, owners[0])  # reversed: its first element is the block's last byte
    assert blocks.find(raw[0][2048::2048]) == (2048, owners[0])
    wide = np.lib.stride_tricks.as_strided(raw[0], shape=(2,), strides=(4096,))  # its second element lies past it
    assert blocks.find(wide) is None and wide.nbytes == 2
    assert blocks.find(raw[0][4000:]) == (4000, owners[0])  # its last bytes
    assert blocks.find(aligned(64)) is None  # memory it never handed out
    assert blocks.find(raw[0][:0]) is None  # no bytes
    assert blocks.lookup(raw[0].ctypes.data + 4000, 97) is None  # runs past its block's end
    assert blocks.lookup(raw[0].ctypes.data - 1, 2) is None  # starts before it


def test_host_blocks_forget_a_block_when_its_array_goes_and_hold_owners_weakly() -> None:
    import gc

    import pyarrow as pa

    blocks = HostBlocks()
    owner = Owner()
    block = blocks.add(aligned(4096), owner)
    start = block.ctypes.data
    view = np.frombuffer(pa.py_buffer(block), np.uint8)[100:200]  # as a read's output holds its block
    del owner
    gc.collect()
    assert blocks.find(view) == (100, None)  # the block lives; its owner did not outlive its last reference
    del block
    assert blocks.find(view) == (100, None)  # the Arrow buffer keeps the block's array alive
    del view
    gc.collect()
    assert blocks.lookup(start, 1) is None and len(blocks) == 0
    again = blocks.add(aligned(4096))  # a new block, maybe at the same address, is found afresh
    assert blocks.find(again) == (0, None) and len(blocks) == 1


def test_host_blocks_from_many_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    blocks = HostBlocks()

    def churn(seed: int) -> int:
        found = 0
        for n in range(200):
            block = blocks.add(aligned(64 * (1 + (seed + n) % 7)))
            found += blocks.find(block[64:]) == (64, None) if block.nbytes > 64 else blocks.find(block) == (0, None)
        return found

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(churn, range(8))) == [200] * 8
    import gc

    gc.collect()
    assert len(blocks) == 0
