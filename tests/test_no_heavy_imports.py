"""Importing the core, loading every installed plugin and CPU work never import a framework.

Each case runs in a fresh interpreter, so modules imported by other tests do not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = (
    "torch",
    "jax",
    "jaxlib",
    "cupy",
    "tifffile",
    "vortex",
    "zarr",
    "numcodecs",
    "dask",
    "ray",
    "tensorflow",
    "ome_arrow",
    "bioio",
    "xarray",
    "tqdm",
    "matplotlib",
    "pyvista",
    "napari",
    "npe2",
    "PIL",
)

REPORT = textwrap.dedent("""
    import importlib.metadata as md, json, sys
    import ome_arrow_core
    reg = ome_arrow_core.default_registry() if "ome_arrow_core.registry" in sys.modules else None
    print(json.dumps({
        "heavy": [m for m in HEAVY if m in sys.modules],
        "entry_points": sorted(ep.name for ep in md.entry_points(group="ome_arrow_core.plugins")),
        "plugins": sorted({r.plugin for r in ome_arrow_core.plugins()}) if LISTED else [],
        "failures": reg.failures if LISTED else {},
        "blocked": sorted(reg.blocked) if LISTED else [],
    }))
""")

CASES = {
    "import": "import ome_arrow_core",
    "plugins-and-dlpack": """
        import numpy as np
        import ome_arrow_core
        from ome_arrow_core import OMEArrow
        ome_arrow_core.plugins()
        OMEArrow(np.zeros((4, 4))).tensor_view().to_dlpack()
    """,
    "cpu-workflow": """
        import pathlib, tempfile
        import numpy as np
        import ome_arrow_core
        from ome_arrow_core import OMEArrow, OMEArrowDataset, write_dataset
        d = pathlib.Path(tempfile.mkdtemp())
        img = OMEArrow(np.arange(2 * 3 * 16 * 16, dtype=np.uint16).reshape(2, 3, 16, 16), "TCYX")
        img.export("parquet", d / "a.ome.parquet", chunk_shape=(8, 8))
        img.export("parquet", d / "r.parquet", layout="record")
        img.export("dict"); img.export("scalar")
        view = OMEArrow.scan(d / "a.ome.parquet").tensor_view(t=1, roi=(2, 2, 9, 9))
        np.from_dlpack(view.to_dlpack()); np.from_dlpack(view.collect().to_dlpack(mode="numpy"))
        list(view.iter_dlpack(tile_size=(4, 4), prefetch=2, shuffle=True, seed=0))
        OMEArrow(d / "r.parquet").tensor_view(t=0, z=0, layout="CYX").to_numpy()
        write_dataset([np.zeros((3, 5, 5), np.uint8)] * 2, d / "ds", dim_order="CYX", progress=False)
        len(OMEArrowDataset.scan(d / "ds"))
        img._repr_mimebundle_(); OMEArrowDataset.scan(d / "ds")._repr_html_()  # thumbnails: numpy and zlib only
        ome_arrow_core.plugins()
    """,
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_framework_is_imported(case: str) -> None:
    listed = case != "import"
    code = f"HEAVY = {HEAVY!r}\nLISTED = {listed}\n" + textwrap.dedent(CASES[case]) + REPORT
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"importing/using the core pulled in {report['heavy']}"
    if listed:  # every installed plugin really was loaded (so the check above covers them)
        assert set(report["entry_points"]) - set(report["blocked"]) <= set(report["plugins"])
        assert report["failures"] == {}


#: The Parquet format's modules: loaded when a Parquet file or dataset is read or written, never to list plugins.
PARQUET_FORMAT = ("pyarrow.parquet", "pyarrow.dataset", "ome_arrow_core.typed_chunk", "ome_arrow_core.record.parquet")


@pytest.mark.parametrize(
    "setup", ["Registry(autoload=False).plugins()", "Registry(autoload=False).resolve_writer('parquet')"]
)
def test_loading_the_builtin_plugins_imports_no_parquet_format(setup: str) -> None:
    code = textwrap.dedent(f"""
        import json, sys
        from ome_arrow_core import Registry
        {setup}
        assert "ome_arrow_core.builtins.parquet_io" in sys.modules  # the built-in plugins were loaded (a registry
        # imports them when one of their hooks is first asked for: listing asks for all)
        print(json.dumps(sorted(m for m in {PARQUET_FORMAT!r} if m in sys.modules)))
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_import_defers_plugin_discovery_and_record_kernels() -> None:
    """``import ome_arrow_core`` loads neither importlib.metadata (entry points are scanned on first use)
    nor pyarrow.compute (needed by records, not by the import)."""
    code = "import sys, ome_arrow_core\nprint(sorted(m for m in ('importlib.metadata', 'pyarrow.compute') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"


def test_first_read_does_not_import_importlib_metadata(tmp_path: Path) -> None:
    """Plugins are discovered from entry_points.txt files directly (importlib.metadata costs ~35 ms a process)."""
    import numpy as np

    from ome_arrow_core import OMEArrow

    path = f"{tmp_path}/p.ome.parquet"
    OMEArrow(np.arange(2 * 16 * 16, dtype=np.uint16).reshape(2, 16, 16), "CYX").export("parquet", path)
    code = (
        "import sys\nfrom ome_arrow_core import OMEArrow\n"
        f"p = OMEArrow.scan({path!r}).tensor_view(c=1, layout='YX').to_numpy()\n"
        "assert int(p[0, 0]) == 256, p[0, 0]\nprint('importlib.metadata' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert proc.stdout.strip() == "False"


def test_a_local_write_loads_no_remote_writer(tmp_path: Path) -> None:
    """Writing a local dataset never imports the remote writer, the remote mirror or object uploads."""
    code = (
        "import sys\nimport numpy as np\nfrom ome_arrow_core import write_dataset\n"
        f"write_dataset([np.zeros((3, 5, 5), np.uint8)] * 2, {str(tmp_path / 'ds')!r}, dim_order='CYX', progress=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('ome_arrow_core.') and "
        "m.rpartition('.')[2] in ('remote_writes', 'remote_mirror', 'puts', 'ranges')))"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"
