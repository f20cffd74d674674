"""Vortex chunks without vortex: a missing or blocked Vortex plugin says what to install, and a registry that blocks
it neither writes nor reads Vortex chunks (test_vortex_dataset.py: the datasets themselves)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vortex", reason="needs vortex-data (pip install -e backends/vortex)")
pytest.importorskip("ome_arrow_vortex", reason="needs ome-arrow-vortex (pip install -e backends/vortex)")

from vortex_plates import N, write_vortex_plate

from ome_arrow_core import BackendUnavailableError, OMEArrow, OMEArrowDataset, Registry, write_dataset
from ome_arrow_core.registry import BLOCK_ENV

HINT = 'pip install "ome-arrow-core[vortex]"'


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The Vortex-chunked plate (see vortex_plates.py) and its pixels."""
    return write_vortex_plate(tmp_path_factory.mktemp("vx") / "plate")


def test_registry_lists_the_chunk_store_as_unavailable_without_vortex(monkeypatch: pytest.MonkeyPatch) -> None:
    import ome_arrow_vortex.plugin

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vortex" else real(name, *a))
    reg = Registry(autoload=False)
    reg.register(ome_arrow_vortex.plugin, name="vortex")
    rows = [r for r in reg.plugins() if r.kind == "chunk store"]
    assert [(r.name, r.handles, r.available, r.install) for r in rows] == [
        ("vortex", "dataset chunks .vortex", False, HINT)
    ]
    with pytest.raises(
        BackendUnavailableError,
        match=r"chunk format 'vortex' needs a backend that is not installed; "
        r'install one with: pip install "ome-arrow-core\[vortex\]"',
    ):
        reg.resolve_chunk_store("chunks.vortex")


def test_blocked_vortex_plugin_says_what_to_install(plate: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = plate
    code = textwrap.dedent(f"""
        import numpy as np, ome_arrow_core as o
        for job in (lambda: o.write_dataset([np.zeros((2, 2), np.uint8)], {str(tmp_path / "w")!r}, dim_order="YX",
                                            chunk_format="vortex"),
                    lambda: o.OMEArrowDataset.scan({str(path)!r})[0].to_numpy()):
            try:
                job()
            except o.BackendUnavailableError as e:
                print("refused:", e)
    """)
    env = {**os.environ, BLOCK_ENV: "vortex"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("refused: chunk format 'vortex'") for line in lines)
    assert all(line.endswith(f"install it with: {HINT}") for line in lines)
    assert not (tmp_path / "w").exists()


def test_a_registry_blocking_vortex_neither_writes_nor_reads_vortex_chunks(
    plate: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    """The caller's registry decides the chunk store (not the shared one, which has Vortex here)."""
    path, arrs = plate
    blocked = Registry(blocked={"vortex"})
    refused = r"chunk format 'vortex'.*blocked"
    with pytest.raises(BackendUnavailableError, match=refused):
        write_dataset(
            [arrs[0]], tmp_path / "w", dim_order="CYX", chunk_format="vortex", registry=blocked, progress=False
        )
    assert not (tmp_path / "w").exists()
    with pytest.raises(BackendUnavailableError, match=refused):
        write_dataset([arrs[0]], path, dim_order="CYX", mode="append", registry=blocked, progress=False)
    ds = OMEArrowDataset.scan(path, registry=blocked)  # the tables are Parquet: scanning needs no store
    assert len(ds) == N
    with pytest.raises(BackendUnavailableError, match=refused):
        ds.read([0])
    with pytest.raises(BackendUnavailableError, match=refused):
        ds[1].tensor_view(layout="CYX").to_numpy()
    # the shared registry (and so a dataset scanned without one) still reads it, after the refusals above
    np.testing.assert_array_equal(OMEArrowDataset.scan(path).read([0, 1]), arrs[:2])
    assert len(OMEArrowDataset.scan(path)) == N  # the refused append added nothing


def test_an_image_opened_with_a_blocking_registry_reads_no_vortex_chunks(plate: tuple[Path, np.ndarray]) -> None:
    """OMEArrow(path, registry=...) hands its registry to the dataset reader, as OMEArrowDataset does."""
    path, arrs = plate
    with pytest.raises(BackendUnavailableError, match=r"chunk format 'vortex'.*blocked"):
        OMEArrow(path, row=1, registry=Registry(blocked={"vortex"})).to_numpy()
    np.testing.assert_array_equal(OMEArrow(path, row=1).to_numpy()[0, :, 0], arrs[1])
