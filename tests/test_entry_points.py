"""Entry points read from entry_points.txt files give what importlib.metadata gives, in the same order."""

from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import zipfile
from importlib.machinery import PathFinder
from pathlib import Path

import pytest

from ome_arrow_core.entry_points import EntryPoint, _normalized, _standard_library_only, entry_points
from ome_arrow_core.registry import ENTRY_POINT_GROUP


@pytest.fixture(autouse=True)
def path_finder_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distributions are found by the standard path finder alone, as in a fresh process, whatever this process
    loaded: ray and dask import the importlib_metadata backport, whose finder takes over from the standard one."""
    finders = [f for f in sys.meta_path if f is PathFinder or not hasattr(f, "find_distributions")]
    monkeypatch.setattr(sys, "meta_path", finders if PathFinder in finders else [*finders, PathFinder])
    if not hasattr(PathFinder, "find_distributions"):  # the backport deleted it
        monkeypatch.setattr(
            PathFinder, "find_distributions", staticmethod(md.MetadataPathFinder.find_distributions), raising=False
        )


def _stdlib(group: str) -> list[tuple[str, str, str]]:
    return [(ep.name, ep.value, ep.dist.version if ep.dist else "") for ep in md.entry_points(group=group)]


def _ours(group: str) -> list[tuple[str, str, str]]:
    return [(ep.name, ep.value, ep.version) for ep in entry_points(group)]


@pytest.mark.parametrize("group", [ENTRY_POINT_GROUP, "console_scripts", "pytest11", "no.such.group"])
def test_same_as_importlib_metadata_here(group: str) -> None:
    assert not _standard_library_only()  # this environment is read from the files
    assert _ours(group) == _stdlib(group)


def test_a_fresh_process_reads_the_files() -> None:
    code = (
        "from ome_arrow_core.entry_points import _standard_library_only, entry_points\n"
        "print(_standard_library_only(), len(entry_points('ome_arrow_core.plugins')) > 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "True"]


def test_another_distribution_finder_is_left_to_importlib(monkeypatch: pytest.MonkeyPatch) -> None:
    class Finder:
        def find_spec(self, *args: object) -> None:
            return None

        def find_distributions(self, *args: object, **kwargs: object) -> list[md.Distribution]:
            return []

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert _standard_library_only()
    assert _ours(ENTRY_POINT_GROUP) == _stdlib(ENTRY_POINT_GROUP)


def _dist(root: Path, dirname: str, entry_points_txt: str | None, version: str = "1.0") -> None:
    d = root / dirname
    d.mkdir(parents=True)
    name = dirname.partition("-")[0].partition(".")[0]
    (d / ("PKG-INFO" if dirname.lower().endswith(".egg-info") else "METADATA")).write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nDescription: Version: 9\n"
    )
    if entry_points_txt is not None:
        (d / "entry_points.txt").write_text(entry_points_txt)


def test_tricky_layouts_match_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    g = "oac.test.group"
    _dist(
        first,
        "Alpha_Pkg-2.0.dist-info",
        f"# comment\n[{g}]\na = json:dumps\nb = os.path:join [extra]\n\n[other]\nc = os:sep\n",
        "2.0",
    )
    _dist(first, "shadow-1.0.dist-info", None)  # no entry points, but it shadows the one below
    _dist(first, "legacy.egg-info", f"[{g}]\nd = json\n", "0.3")
    _dist(first, "UPPER-3.0.DIST-INFO", f"[{g}]\ne = json:loads\n", "3.0")
    _dist(second, "alpha.pkg-1.0.dist-info", f"[{g}]\nshadowed = json:dumps\n")  # same normalised name
    _dist(second, "Shadow-2.0.dist-info", f"[{g}]\nshadowed_too = json\n")
    _dist(second, "beta-0.1.dist-info", f"[{g}]\nf = json.decoder:JSONDecoder.decode\n", "0.1")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))
    ours = _ours(g)
    assert ours == _stdlib(g)
    assert {n for n, _, _ in ours} == {"a", "b", "d", "e", "f"}
    assert ("a", "json:dumps", "2.0") in ours and ("d", "json", "0.3") in ours


def test_load_follows_module_attribute_paths() -> None:
    import json
    import json.decoder
    import os.path

    assert EntryPoint("a", "json:dumps").load() is json.dumps
    assert EntryPoint("b", "os.path:join [extra]").load() is os.path.join
    assert EntryPoint("c", "json").load() is json
    assert EntryPoint("d", "json.decoder:JSONDecoder.decode").load() is json.decoder.JSONDecoder.decode
    with pytest.raises(ModuleNotFoundError):
        EntryPoint("e", "oac_no_such_module_anywhere").load()
    with pytest.raises(AttributeError):
        EntryPoint("f", "json:no_such_attr").load()


def test_a_zip_on_the_path_is_left_to_importlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "plugins.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[oac.zip.group]\nz = json\n")
    monkeypatch.syspath_prepend(str(archive))
    assert _standard_library_only()
    assert _ours("oac.zip.group") == _stdlib("oac.zip.group") == [("z", "json", "1.0")]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(archive)])
    assert not _standard_library_only()


def test_unreadable_and_long_files_match_importlib_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    g = "oac.test.long"
    _dist(tmp_path, "dir_ep-1.0.dist-info", None)
    (tmp_path / "dir_ep-1.0.dist-info" / "entry_points.txt").mkdir()  # not a file: no entry points
    filler = "".join(f"x{i} = json\n" for i in range(9000))  # > 64 KiB: read in several parts
    _dist(tmp_path, "long-2.0.dist-info", f"[other]\n{filler}[{g}]\nlast = json:loads\n", "2.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert len((tmp_path / "long-2.0.dist-info" / "entry_points.txt").read_bytes()) > 1 << 16
    assert _ours(g) == _stdlib(g) == [("last", "json:loads", "2.0")]
    _dist(tmp_path, "latin-1.0.dist-info", None)
    (tmp_path / "latin-1.0.dist-info" / "entry_points.txt").write_bytes(b"[other]\nname = caf\xe9\n")
    assert _ours(g) == [("last", "json:loads", "2.0")]  # not UTF-8 but not our group: skipped (importlib raises)


@pytest.mark.parametrize(
    "stem",
    [
        "ome_arrow_core-0.1.0",
        "Foo.Bar-1",
        "a__b-2",
        "a_._b",
        "x",
        "X_Y",
        "_lead-1",
        "trail_",
        "a..b",
        "a-b-c",
        "Ωmega_X",
        "",
    ],
)
def test_distribution_names_fold_as_the_pattern_does(stem: str) -> None:
    """The fast path for names with nothing to fold gives what the pattern gives (runs of -_. to _, lower case)."""
    assert _normalized(stem) == re.sub(r"[-_.]+", "_", stem.partition("-")[0]).lower()
