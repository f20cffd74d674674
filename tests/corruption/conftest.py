"""Print the corruption suite's outcome counts per mutation class at the end of the run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import corruption_harness


def pytest_terminal_summary(terminalreporter: Any) -> None:
    results = corruption_harness.RESULTS
    if not results:
        return
    table = corruption_harness.summarize(results)
    report = os.environ.get("OME_ARROW_CORE_FUZZ_REPORT")
    if report:
        Path(report).write_text(table + "\n")
    terminalreporter.section("corruption suite outcomes")
    terminalreporter.write_line("pixels: exactly the original pixels; error: an OMEArrowError naming the file")
    for line in table.splitlines():
        terminalreporter.write_line(line)
