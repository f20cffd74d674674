"""The one progress bar (ome_arrow_core.progress): on a terminal only unless asked, the same with
or without tqdm, messages on lines of their own; write_dataset uses it."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import write_dataset
from ome_arrow_core.progress import Progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal (what Progress asks before drawing)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(params=["tqdm", "plain"])
def flavour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "plain":
        monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm raises ImportError
    return str(request.param)


def test_silent_unless_a_terminal_or_asked(flavour: str) -> None:
    quiet = io.StringIO()
    with Progress(10, "x", stream=quiet) as bar:
        bar.update(10, "done")
    assert quiet.getvalue() == "" and bar.done == 10
    shown = Terminal()
    with Progress(10, "x", stream=shown) as bar:
        bar.update(4, "a")
        bar.update(6, "b")
    assert "x" in shown.getvalue() and shown.getvalue().endswith("\n")
    assert ("100%" if flavour == "tqdm" else "100.0%") in shown.getvalue()
    forced = io.StringIO()
    with Progress(2, "y", unit="img", enabled=True, stream=forced) as bar:
        bar.update(1)
    assert "y" in forced.getvalue()


def test_plain_line_counts_the_total_and_notes_get_their_own_line(flavour: str) -> None:
    shown = Terminal()
    with Progress(2 * 2**20, "convert", stream=shown) as bar:
        bar.update(2**20, "first")
        bar.note("error: second: unreadable")
        bar.update(2**20, "third")
    out = shown.getvalue()
    assert "error: second: unreadable\n" in out
    if flavour == "plain":
        assert out.startswith("\r\033[Kconvert:  50.0% 1.0 MiB of 2.0 MiB")
        assert "convert: 100.0% 2.0 MiB of 2.0 MiB" in out
        assert "\r\033[Kerror: second: unreadable\n" in out  # the bar's line is cleared first


def test_unknown_total(flavour: str) -> None:
    shown = Terminal()
    with Progress(None, "scan", unit="img", stream=shown) as bar:
        for _ in range(3):
            bar.update(1)
    assert bar.count == 3 and ("3img" in shown.getvalue() or "3 img" in shown.getvalue())


def test_write_dataset_shows_it_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flavour: str
) -> None:
    images = [np.zeros((4, 4), np.uint8)] * 3
    write_dataset(images, tmp_path / "a", progress=None)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    write_dataset(images, tmp_path / "b", progress=True)
    err = capsys.readouterr().err
    assert "write_dataset" in err and ("3/3" in err if flavour == "tqdm" else "3 img of 3 img" in err)
