"""Every ```python block in docs/*.md and README.md runs (in a temporary directory), so no example rots."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
_DIRS: dict[str, Path] = {}
CASES = [(p, i, code) for p in PAGES for i, code in enumerate(BLOCK.findall(p.read_text()))]


def test_docs_have_examples() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize(("page", "index", "code"), CASES, ids=[f"{p.stem}-{i}" for p, i, _ in CASES])
def test_doc_example_runs(page: Path, index: int, code: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = _DIRS.setdefault(page.name, tmp_path_factory.mktemp(page.stem))  # blocks of a page share files
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        exec(compile(code, f"{page.name}[{index}]", "exec"), {"__name__": "__doc_example__"})
    finally:
        os.chdir(cwd)
