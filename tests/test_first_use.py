"""What a fresh process loads to read its first image: the reader's modules, not the writers', not pyarrow's
compute kernels or datasets, not pandas, not numpy.ma, not the plugins' export and reader modules (plugins are
discovered, their code loads when used). Each case runs in a fresh interpreter and checks the pixels it read.

Also: the lazy doors (``typed_chunk``, ``remote``, ``dataset``, ``plugin_api``) give every name they list, the same object
as its module's, and refuse names they do not list.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from ome_arrow_core import OMEArrow, write_dataset

#: Never loaded by reading one image of a dataset written with the defaults.
NOT_FOR_A_READ = (
    "pyarrow.compute",
    "pyarrow.dataset",
    "pandas",
    "numpy.ma",
    "ome_arrow_core.typed_chunk.writer",
    "ome_arrow_core.typed_chunk.compact",
    "ome_arrow_core.typed_chunk.remote_writes",
    "ome_arrow_core.typed_chunk.verify",
    "ome_arrow_core.remote.writes",
    "ome_arrow_core.remote.puts",
    "ome_arrow_core.record.parquet",
    "ome_arrow_cupy.export",
    "ome_arrow_vortex.reader",
    # not needed for pixels: writers' atomic files, stacks of files, notebook HTML, an OME-XML parser (no document
    # stored), a plugin's format module
    "ome_arrow_core.safe_write",
    "ome_arrow_core.stacks",
    "ome_arrow_core.display.grid",
    "ome_arrow_core.display.html",
    "ome_arrow_core.ome_xml",
    "xml.etree.ElementTree",
    "ome_arrow_vortex.format",
    # no prefetch threads for one plane; a listing's and an error message's modules; the Vortex reader's sniffer
    # (a Parquet path is claimed by its suffix first)
    "concurrent.futures",
    "ome_arrow_core.first_party",
    "ome_arrow_core.plugin_listing",
    "ome_arrow_vortex.seal",
    # the tables are read with pyarrow's Parquet reader itself (see ome_arrow_core.parquet_lite): pyarrow.parquet
    # would load pyarrow.fs, its cloud filesystems and TLS
    "pyarrow.parquet",
    "pyarrow.fs",
    "ssl",
    # the chunk writer's Thrift encoder and page checksums; the thumbnail renderer, its colours and the PNG encoder
    # (an image's class carries the display methods; they load when it draws)
    "ome_arrow_core.typed_chunk.direct_chunks",
    "ome_arrow_core.typed_chunk.thrift_rows",
    "ome_arrow_core.typed_chunk.page_crcs",
    "ome_arrow_core.display.rendering",
    "ome_arrow_core.display.colors",
    "ome_arrow_core.display.contrast",
    "ome_arrow_core.display.png",
    # what turns arrays and tensors into images
    "ome_arrow_core.ingesting",
    # a plate's aligned index (and its row-group checks, lazy columns and spliced chunk footers), an unaligned
    # plate's image owners, the writers' table sink and row-group cuts, remote GETs, and the remote error
    # classifier (loaded when a read fails)
    "ome_arrow_core.typed_chunk.aligned_index",
    "ome_arrow_core.typed_chunk.aligned_checks",
    "ome_arrow_core.typed_chunk.lazy_rows",
    "ome_arrow_core.typed_chunk.chunk_footers",
    "ome_arrow_core.typed_chunk.group_rows",
    "ome_arrow_core.typed_chunk.table_files",
    "ome_arrow_core.typed_chunk.chunk_groups",
    "ome_arrow_core.remote.ranges",
    "ome_arrow_core.remote_errors",
    # the streams' windows, batches and prefetch (iter_dlpack and friends): a first plane streams nothing
    "ome_arrow_core.iteration",
    # a remote dataset's local mirror (its temporary directories): a local path or plate is opened where it lies
    "ome_arrow_core.typed_chunk.remote_mirror",
    "tempfile",
)
#: A plate written by write_dataset groups its index by image (pyarrow's kernels do that, for now); a dataset's
#: image locations know record files too; opening a dataset puts back a copy a killed overwrite left aside (safe_write),
#: a dataset's class carries its notebook grid, and its modules load the OME-XML code; its index is aligned (the
#: aligned index, its checks, lazy columns and image owners, the chunk files' recorded footers).
NOT_FOR_A_PLATE = tuple(
    m
    for m in NOT_FOR_A_READ
    if m
    not in (
        "pyarrow.compute",
        "ome_arrow_core.record.parquet",
        "ome_arrow_core.safe_write",
        "ome_arrow_core.display.grid",
        "ome_arrow_core.display.html",
        "ome_arrow_core.ome_xml",
        "xml.etree.ElementTree",
        "pyarrow.parquet",
        "pyarrow.fs",
        "ssl",
        "ome_arrow_core.display.rendering",
        "ome_arrow_core.display.colors",
        "ome_arrow_core.display.contrast",
        "ome_arrow_core.display.png",
        "ome_arrow_core.typed_chunk.aligned_index",
        "ome_arrow_core.typed_chunk.aligned_checks",
        "ome_arrow_core.typed_chunk.lazy_rows",
        "ome_arrow_core.typed_chunk.chunk_footers",
        "ome_arrow_core.typed_chunk.group_rows",
    )
)


def _fresh(code: str) -> dict[str, object]:
    report = textwrap.dedent("""
        import json, sys
        print(json.dumps({"loaded": [m for m in WATCH if m in sys.modules],
                          "plugins_found": "ome_arrow_core.registry" in sys.modules}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + report.replace("WATCH", repr(NOT_FOR_A_READ))],
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_the_first_plane_of_an_image_loads_only_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "img.ome.parquet"
    a = np.arange(2 * 3 * 40 * 48, dtype=np.uint16).reshape(2, 3, 40, 48)
    OMEArrow(a, "CZYX").export("parquet", path, chunk_shape=(16, 16))
    got = _fresh(f"""
        import numpy as np
        from ome_arrow_core import OMEArrow
        p = OMEArrow.scan({str(path)!r}).tensor_view(c=1, z=2, layout="YX").to_numpy()
        assert np.array_equal(p, np.arange(2 * 3 * 40 * 48, dtype=np.uint16).reshape(2, 3, 40, 48)[1, 2]), p
    """)
    assert got["plugins_found"] is True  # the shared registry was built: its plugins were discovered
    assert got["loaded"] == []


def test_the_first_image_of_a_plate_loads_only_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "plate.ome-arrow"
    images = [np.full((2, 8, 8), i, dtype=np.uint8) for i in range(5)]
    write_dataset(images, path, dim_order="CYX", progress=False)
    got = _fresh(f"""
        import numpy as np
        from ome_arrow_core import OMEArrowDataset
        ds = OMEArrowDataset.scan({str(path)!r})
        assert len(ds) == 5 and np.array_equal(ds[3].to_numpy(), np.full((1, 2, 1, 8, 8), 3, np.uint8))
    """)
    assert not set(got["loaded"]) & set(NOT_FOR_A_PLATE)  # type: ignore[arg-type]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts the process's threads in /proc")
def test_the_first_image_of_a_plate_starts_no_thread(tmp_path: Path) -> None:
    """A plate of several row groups: its images, index and chunks row groups are read without pre-buffering, so
    pyarrow's IO thread pool is not started."""
    path = tmp_path / "plate.ome-arrow"
    images = [np.full((2, 8, 8), i, dtype=np.uint16) for i in range(19)]
    write_dataset(images, path, dim_order="CYX", images_per_group=4, progress=False)
    got = _fresh(f"""
        import os
        import numpy as np
        from ome_arrow_core import OMEArrowDataset
        before = len(os.listdir("/proc/self/task"))
        ds = OMEArrowDataset.scan({str(path)!r})
        assert np.array_equal(ds[9].to_numpy(), np.full((1, 2, 1, 8, 8), 9, np.uint16))
        assert len(os.listdir("/proc/self/task")) == before, (before, os.listdir("/proc/self/task"))
    """)
    assert not set(got["loaded"]) & set(NOT_FOR_A_PLATE)  # type: ignore[arg-type]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts the process's threads in /proc")
@pytest.mark.parametrize(("n", "per_group", "groups"), [(7, 4, 2), (1000, 1024, 1)])  # several row groups, one
def test_a_plates_located_first_image_reads_no_index_group(tmp_path: Path, n: int, per_group: int, groups: int) -> None:
    """A plate's index is loaded a row group at a time, even when it is one (1,000 small images): an image read by
    its pixel locator reads none of it (no pyarrow table read, so no IO thread, and not the modules that load a
    group), whatever the plate's size."""
    path = tmp_path / "plate.ome-arrow"
    images = [np.full((1, 64, 64), i, dtype=np.uint16) for i in range(n)]  # small images: packed, with locators
    write_dataset(images, path, dim_order="CYX", images_per_group=per_group, progress=False)
    assert pq.read_metadata(path / "index.parquet").num_row_groups == groups
    got = _fresh(f"""
        import os
        import numpy as np
        from ome_arrow_core import OMEArrowDataset
        from ome_arrow_core.typed_chunk.opening import open_dataset
        from pathlib import Path
        before = len(os.listdir("/proc/self/task"))
        ds = OMEArrowDataset.scan({str(path)!r})
        assert np.array_equal(ds[5].to_numpy(), np.full((1, 1, 1, 64, 64), 5, np.uint16))
        assert len(os.listdir("/proc/self/task")) == before, (before, os.listdir("/proc/self/task"))
        opened = open_dataset(Path({str(path)!r}))
        assert opened.aligned is not None and opened.aligned.loaded == 0, opened.aligned
        assert opened.index.num_rows == 0
    """)
    assert not set(got["loaded"]) & set(NOT_FOR_A_PLATE)  # type: ignore[arg-type]
    assert {"ome_arrow_core.typed_chunk.aligned_index", "ome_arrow_core.typed_chunk.chunk_footers"} <= set(
        got["loaded"]  # type: ignore[arg-type]
    )
    assert not {"ome_arrow_core.typed_chunk.aligned_checks", "ome_arrow_core.typed_chunk.group_rows"} & set(
        got["loaded"]  # type: ignore[arg-type]
    )


def test_a_plates_located_first_image_opens_its_chunks_file_once(tmp_path: Path) -> None:
    """An image read by its pixel locator takes one positioned read of its chunks file: the file's footer is neither
    read nor checked (the manifest's record of it bounds the index; a read through the index checks it first)."""
    path = tmp_path / "plate.ome-arrow"
    images = [np.full((1, 64, 64), i, dtype=np.uint16) for i in range(7)]  # small images: packed, with locators
    write_dataset(images, path, dim_order="CYX", images_per_group=4, progress=False)
    _fresh(f"""
        import os
        import numpy as np
        from ome_arrow_core import OMEArrowDataset
        real, seen = os.open, []
        def spy(file, *args, **kwargs):
            seen.append(os.path.basename(os.fspath(file)))
            return real(file, *args, **kwargs)
        os.open = spy
        ds = OMEArrowDataset.scan({str(path)!r})
        assert np.array_equal(ds[5].to_numpy(), np.full((1, 1, 1, 64, 64), 5, np.uint16))
        os.open = real
        assert seen.count("chunks.parquet") == 1, seen
    """)


def test_the_first_read_of_a_record_file_loads_no_kernels(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    a = np.arange(3 * 16 * 16, dtype=np.int16).reshape(3, 16, 16)
    OMEArrow(a, "CYX").export("parquet", path, layout="record")
    got = _fresh(f"""
        import numpy as np
        from ome_arrow_core import OMEArrow
        p = OMEArrow.scan({str(path)!r}).tensor_view(c=2, layout="YX").to_numpy()
        assert np.array_equal(p, np.arange(3 * 16 * 16, dtype=np.int16).reshape(3, 16, 16)[2])
    """)
    assert not {"pyarrow.compute", "pyarrow.dataset", "pandas", "numpy.ma"} & set(got["loaded"])  # type: ignore[arg-type]


DOORS = (
    "ome_arrow_core.typed_chunk",
    "ome_arrow_core.remote",
    "ome_arrow_core.dataset",
    "ome_arrow_core.plugin_api",
    "ome_arrow_core.display",
)


@pytest.mark.parametrize("door", DOORS)
def test_lazy_doors_give_every_name_they_list(door: str) -> None:
    """Each name of a door is its module's own object (so identity checks and isinstance keep working)."""
    import importlib

    module = importlib.import_module(door)
    where = module._WHERE
    assert set(module.__all__) <= set(where) | set(vars(module))
    for name in module.__all__:
        if name not in where:
            continue
        source, attr = where[name]
        anchor = door if hasattr(module, "__path__") else door.rpartition(".")[0]
        assert getattr(module, name) is getattr(importlib.import_module(source, anchor), attr), name
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        module.not_a_name  # noqa: B018
    assert not hasattr(module, "not_a_name")


def test_submodules_still_import_through_a_lazy_door() -> None:
    from ome_arrow_core.typed_chunk import packing, write_steps

    assert packing.__name__.endswith(".packing") and write_steps.__name__.endswith(".write_steps")


def test_the_display_doors_render_stays_the_function_once_its_module_loads() -> None:
    """``display.render`` is the renderer, whichever loads first: the name or its module (``display.rendering``)."""
    _fresh("""
        import importlib
        module = importlib.import_module("ome_arrow_core.display.rendering")
        from ome_arrow_core import display
        assert display.render is module.render and callable(display.render)
        assert display.DEFAULT_SIZE == module.DEFAULT_SIZE == 256
    """)
