"""An outside package (tests/plugins/example_plugin) is discovered, listed and preferred by priority."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, Registry, plugins
from ome_arrow_core.testing import check_reader

example = pytest.importorskip(
    "ome_arrow_example.plugin", reason="install tests/plugins/example_plugin (scripts/setup.sh does)"
)


def test_listed_by_plugins_and_cli() -> None:
    rows = [r for r in plugins() if r.plugin == "example"]
    assert {r.name for r in rows} == {"labelled", "exampleimg", "example"}
    assert all(r.available and r.version == "0.0.1" for r in rows)
    out = subprocess.run(
        [sys.executable, "-m", "ome_arrow_core.cli", "plugins"], capture_output=True, text=True, check=True
    )
    assert "exampleimg" in out.stdout and ".exampleimg" in out.stdout


def test_higher_priority_ingester_wins_over_builtin() -> None:
    arr = np.arange(12, dtype=np.int16).reshape(3, 4).view(example.LabelledArray)
    before = len(example.ingested)
    img = OMEArrow(arr)
    assert len(example.ingested) == before + 1
    np.testing.assert_array_equal(img.tensor_view(layout="YX").to_numpy(), np.arange(12, dtype=np.int16).reshape(3, 4))
    # a plain ndarray still goes to the built-in ingester
    OMEArrow(np.zeros((2, 2), np.uint8))
    assert len(example.ingested) == before + 1


def test_reader_and_exporter_resolved_from_outside_package(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(1, 2, 3, 5, 7)).astype(np.float32)
    path = tmp_path / "x.exampleimg"
    example.write_exampleimg(data, path)
    check_reader(path, data)  # the plugin kit, through the registry that found the entry point
    view = OMEArrow.scan(path).tensor_view(t=0, z=1, roi=(1, 1, 4, 3))
    out = np.from_dlpack(view.collect().to_dlpack(mode="example"))
    np.testing.assert_array_equal(out, data[0, 1, :, 1:4, 1:5])


def test_reader_conforms_in_a_private_registry(tmp_path: Path) -> None:
    """The kit on the example reader registered by hand, every supported dtype, no entry points."""
    reg = Registry(autoload=False)
    reg.register(example, name="example")
    rng = np.random.default_rng(1)
    for dtype in ("uint8", "int16", "uint32", "float64", "bool"):
        data = rng.integers(0, 2, (2, 1, 3, 9, 11)) if dtype == "bool" else rng.integers(0, 100, (2, 1, 3, 9, 11))
        path = tmp_path / f"{dtype}.exampleimg"
        example.write_exampleimg(data.astype(dtype), path)
        check_reader(path, data.astype(dtype), registry=reg)


def test_blocked_plugin_is_not_loaded() -> None:
    reg = Registry(blocked={"example"})
    assert "example" not in {r.plugin for r in reg.plugins()}
    with pytest.raises(Exception, match="exampleimg|unknown suffix"):
        reg.resolve_reader("x.exampleimg")
