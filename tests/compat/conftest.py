"""Fixtures for the compatibility tests: the reference's sdist data (downloaded once with pip, cached)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from run_reference_suite import reference_root


@pytest.fixture(scope="session")
def reference_data() -> Path:
    """tests/data of the ome-arrow 0.1.0 sdist; skips when it cannot be downloaded (offline)."""
    try:
        return reference_root() / "tests" / "data"
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot download the ome-arrow 0.1.0 sdist: {exc}")
