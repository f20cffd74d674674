"""Shared fixtures of the backend tests: the rich OME-TIFF (tests/backends/ome_rich.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.backends.ome_rich import write_rich_tiff

Rich = tuple[Path, Any, np.ndarray]


@pytest.fixture(scope="session")
def rich_once(tmp_path_factory: pytest.TempPathFactory) -> Rich:
    """The rich OME-TIFF, written once a session (building its OME-XML with ome-types is the slow part)."""
    ome_types = pytest.importorskip("ome_types")
    pytest.importorskip("tifffile")
    path = tmp_path_factory.mktemp("rich") / "rich.ome.tif"
    model, pixels = write_rich_tiff(path, ome_types)
    return path, model, pixels


@pytest.fixture()
def rich(rich_once: Rich, tmp_path: Path) -> Rich:
    """(path, OME model, TZCYX pixels) of the rich OME-TIFF: this test's own copies of the file, model and
    pixels at ``tmp_path / "rich.ome.tif"``, so no test sees what another did to them."""
    source, model, pixels = rich_once
    path = tmp_path / "rich.ome.tif"
    shutil.copyfile(source, path)
    return path, model.model_copy(deep=True), pixels.copy()
