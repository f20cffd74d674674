"""Shared fixtures of the backend tests: the rich OME-TIFF (tests/backends/ome_rich.py); Ray's usage statistics off."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.backends.ome_rich import write_rich_tiff

Rich = tuple[Path, Any, np.ndarray]


@pytest.fixture(scope="session", autouse=True)
def no_ray_usage_stats() -> Iterator[None]:
    """Ray's usage statistics off (``RAY_USAGE_STATS_ENABLED=0``, what ``ray disable-usage-stats`` sets), also in the
    Ray processes and scripts the tests start: else Ray Data's first run starts a thread that queries Prometheus on
    localhost:9090 every 10 s for the rest of the process (``usage.poller``, ``query_prometheus_counter``), logging
    each failure, which showed as "--- Logging error ---" once a test's logging stream had closed."""
    with pytest.MonkeyPatch.context() as m:
        m.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield


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
