"""README.md's examples run as written, from the repository root, on the repository's own sample files:
every ```python block, and every command of its command-line block."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYTHON = re.findall(r"```python\n(.*?)```", README, re.S)
BASH = re.search(r"## Command line\n\n```bash\n(.*?)```", README, re.S)


@pytest.fixture(scope="module")
def root_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory that looks like the repository root (its tests/data) and takes what the examples write."""
    here = tmp_path_factory.mktemp("readme")
    (here / "tests").mkdir()
    (here / "tests" / "data").symlink_to(ROOT / "tests" / "data")
    return here


def test_readme_has_examples() -> None:
    assert len(PYTHON) >= 2 and BASH is not None


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_readme_python_block_runs(index: int, root_copy: Path) -> None:
    cwd = os.getcwd()
    os.chdir(root_copy)
    try:
        exec(compile(PYTHON[index], f"README.md[{index}]", "exec"), {"__name__": "__readme__"})
    finally:
        os.chdir(cwd)


def _commands() -> list[list[str]]:
    assert BASH is not None
    text = BASH.group(1).replace("\\\n", " ")
    return [shlex.split(line.split("  #")[0]) for line in text.splitlines() if line.startswith("ome-arrow-core")]


def test_readme_commands_run(root_copy: Path) -> None:
    commands = _commands()
    assert [c[1] for c in commands] == [
        "convert",
        "info",
        "info",
        "thumbnail",
        "compact",
        "verify",
        "cleanup",
        "plugins",
        "plugins",
        "--version",
    ]
    for argv in commands:
        proc = subprocess.run(
            [sys.executable, "-m", "ome_arrow_core.cli", *argv[1:]], cwd=root_copy, capture_output=True, text=True
        )
        assert proc.returncode == 0, (argv, proc.stderr)
        assert proc.stdout, argv
    listing = subprocess.run(
        [sys.executable, "-m", "ome_arrow_core.cli", "info", "plate.ome.parquet"],
        cwd=root_copy,
        capture_output=True,
        text=True,
    ).stdout
    assert "2 images" in listing and "z-series.ome.tiff" in listing and "time-series.ome.tif" in listing
    assert (root_copy / "plate.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
