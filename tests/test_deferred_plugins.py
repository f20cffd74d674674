"""Our plugins are imported when a hook they implement is first asked for (ome_arrow_core.deferred_plugins); a third
party's entry point is imported at once and found whatever the input, ours included."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ome_arrow_core import OMEArrow, Registry, hookspecs
from ome_arrow_core.deferred_plugins import FIRST_PARTY_HOOKS, hooks_of
from ome_arrow_core.entry_points import entry_points
from ome_arrow_core.first_party import FIRST_PARTY
from ome_arrow_core.plugin_manager import PluginManager
from ome_arrow_core.registry import BUILTINS, ENTRY_POINT_GROUP

#: A registry's listing of each hook's handlers.
HOOKS = ("ingesters", "readers", "writers", "exporters", "chunk_stores")
#: Plugins whose hooks a Parquet image's first plane never asks for (ingest and export).
NOT_FOR_A_READ = ("ome_arrow_torch.plugin", "ome_arrow_jax.plugin", "ome_arrow_cupy.plugin")


@pytest.mark.parametrize("name", sorted(FIRST_PARTY_HOOKS))
def test_each_listed_plugin_implements_exactly_its_listed_hooks(name: str) -> None:
    module_name, hooks = FIRST_PARTY_HOOKS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.skip(f"{module_name} is not installed")
    pm = PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(module, name=name)
    assert {caller.name for caller in pm.get_hookcallers(module) or ()} == hooks


def test_every_builtin_and_backend_is_listed_and_installed_ones_point_at_their_module() -> None:
    assert all(hooks_of(name, module) for name, module in BUILTINS.items())
    assert {p.name for p in FIRST_PARTY.values() if p.kind == "backend"} <= set(FIRST_PARTY_HOOKS)
    ours = [ep for ep in entry_points(ENTRY_POINT_GROUP) if ep.name in FIRST_PARTY_HOOKS]
    assert ours and all(hooks_of(ep.name, ep.value) for ep in ours), [(ep.name, ep.value) for ep in ours]


def test_handlers_come_in_the_order_of_registering_every_plugin_at_once() -> None:
    """Priority ties are broken by registration order, whichever hook imports a deferred plugin first."""
    eager = Registry(autoload=False, builtins=False)  # what a registry did before deferring: import each in turn
    names: set[str] = set()
    for ep in entry_points(ENTRY_POINT_GROUP):
        if ep.name not in eager.blocked and ep.name not in names:
            names.add(ep.name)
            try:
                plugin = ep.load()
            except Exception:  # a broken plugin is skipped (and recorded) by a registry too
                continue
            eager.register(plugin, name=ep.name, version=ep.version)
    for name, module in BUILTINS.items():
        if name not in eager.blocked and name not in names:
            eager.register(importlib.import_module(module), name=name)
    forward, backward = Registry(), Registry()
    for reg, order in ((forward, HOOKS), (backward, HOOKS[::-1])):
        for listing in order:
            getattr(reg, listing)()
    for listing in HOOKS:
        want = [(h.plugin, h.name) for h in getattr(eager, listing)()]
        assert [(h.plugin, h.name) for h in getattr(forward, listing)()] == want
        assert [(h.plugin, h.name) for h in getattr(backward, listing)()] == want
    assert len({h.priority for h in eager.readers()}) < len(eager.readers())  # there are ties to break
    assert forward.failures == backward.failures


def _third_party(root: Path, dist: str, name: str, module: str, source: str) -> None:
    """An installed-looking distribution in ``root``: ``module.py`` and a dist-info with entry point ``name``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {module}\n")


_READER = """
    from ome_arrow_core import Reader, hookimpl

    opened = []

    def _open(path, **options):
        opened.append(path)
        raise RuntimeError("only resolution is tested")

    @hookimpl
    def ome_arrow_readers():
        return [Reader(name="NAME", priority=100, suffixes=SUFFIXES, open=_open)]
"""


def test_a_third_party_reader_is_found_for_our_own_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point in a dist-info on sys.path, claiming .ome.parquet above the built-in reader, wins; the plugins
    a read never asks for stay unimported."""
    source = _READER.replace("NAME", "outsider").replace("SUFFIXES", "('.ome.parquet',)")
    _third_party(tmp_path, "oac_outsider", "outsider", "oac_outsider_plugin", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    reader = reg.resolve_reader(tmp_path / "img.ome.parquet")
    assert (reader.plugin, reader.name) == ("outsider", "outsider")
    assert reg.resolve_reader(tmp_path / "img.parquet").plugin == "parquet"  # ours still has the rest
    assert [r.version for r in reg.plugins() if r.plugin == "outsider"] == ["1.0"]


def test_one_of_our_names_pointing_elsewhere_is_not_deferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry point named ``tiff`` whose module is not ome_arrow_tiff.plugin is a third party's: imported at once,
    and it is the ``tiff`` plugin (the first distribution on sys.path wins, as before)."""
    source = _READER.replace("NAME", "other-tiff").replace("SUFFIXES", "('.tif',)")
    _third_party(tmp_path, "oac_other_tiff", "tiff", "oac_other_tiff_plugin", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "oac_other_tiff_plugin", raising=False)
    reg = Registry()
    assert "oac_other_tiff_plugin" in sys.modules  # imported with the registry, before any hook was asked for
    assert reg.resolve_reader(tmp_path / "a.tif").name == "other-tiff"
    assert [h.open.__module__ for h in reg.readers() if h.plugin == "tiff"] == ["oac_other_tiff_plugin"]


def test_a_fresh_process_reads_a_parquet_image_without_the_ingest_and_export_plugins(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.parquet"
    a = np.arange(2 * 3 * 16 * 16, dtype=np.uint16).reshape(2, 3, 16, 16)
    OMEArrow(a, "CZYX").export("parquet", path)
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from ome_arrow_core import OMEArrow, default_registry
        p = OMEArrow.scan({str(path)!r}).tensor_view(c=1, z=2, layout="YX").to_numpy()
        assert np.array_equal(p, np.arange(2 * 3 * 16 * 16, dtype=np.uint16).reshape(2, 3, 16, 16)[1, 2])
        loaded = [m for m in {NOT_FOR_A_READ!r} + ("ome_arrow_example.plugin",) if m in sys.modules]
        readers = [r.plugin for r in default_registry().readers()]
        print(json.dumps({{"loaded": loaded, "readers": readers}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    example = any(ep.name == "example" for ep in entry_points(ENTRY_POINT_GROUP))
    assert got["loaded"] == (["ome_arrow_example.plugin"] if example else [])  # a third party's: imported anyway
    assert "parquet" in got["readers"] and ("example" in got["readers"]) == example
