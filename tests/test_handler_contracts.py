"""Plugin contracts the core relies on: missing handler callables raise real errors, describe() has a default,
and images over plugin sources are made through OMEArrow.from_source (no private constructor keywords)."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pixels import random_pixels

from ome_arrow_core import OMEArrow, PluginError, Registry, hookimpl
from ome_arrow_core.handlers import PixelSource, Reader, Writer
from ome_arrow_core.meta import ImageMeta
from ome_arrow_core.selection import Selection

PIXELS = random_pixels((2, 1, 2, 6, 7), np.uint16, seed=3)


class PlainSource:
    """A plugin source that neither subclasses PixelSource nor defines describe()."""

    def __init__(self, path: Path) -> None:
        self.meta = ImageMeta(sizes=dict(zip("TZCYX", PIXELS.shape)), dtype=PIXELS.dtype)
        self.reads = 0

    def read(self, sel: Selection) -> np.ndarray:
        self.reads += 1
        return sel.apply(PIXELS)


class SubclassedSource(PlainSource, PixelSource):
    """The same source, subclassing PixelSource: it inherits the default describe()."""


class Plugin:
    def __init__(self, source: type[PlainSource] = PlainSource, *, open_: bool = True, write: bool = True) -> None:
        self.source, self.open_, self.write = source, open_, write

    @hookimpl
    def ome_arrow_readers(self) -> Sequence[Reader]:
        return [
            Reader(name="plain", suffixes=(".plain",), open=(lambda p, **_: self.source(p)) if self.open_ else None)
        ]

    @hookimpl
    def ome_arrow_writers(self) -> Sequence[Writer]:
        def write(image: Any, out: Path, **_: Any) -> Path:
            np.save(out, image.to_numpy(layout="TZCYX"))  # the file holds TZCYX, as PlainSource reads
            return out

        return [Writer(name="plainw", formats=("plain",), suffixes=(".plain",), write=write if self.write else None)]


def registry(plugin: Plugin) -> Registry:
    reg = Registry(autoload=False)
    reg.register(plugin, name="plain-plugin")
    return reg


@pytest.fixture
def plain_file(tmp_path: Path) -> Path:
    path = tmp_path / "x.plain"
    path.write_bytes(b"")
    return path


def test_reader_without_open_is_a_plugin_error(plain_file: Path) -> None:
    with pytest.raises(PluginError, match=r"'plain' reader \(plugin 'plain-plugin'\) has no open function"):
        OMEArrow.scan(plain_file, registry=registry(Plugin(open_=False)))


def test_writer_without_write_is_a_plugin_error(tmp_path: Path) -> None:
    img = OMEArrow(PIXELS, "TZCYX", registry=registry(Plugin(write=False)))
    with pytest.raises(PluginError, match=r"'plainw' writer \(plugin 'plain-plugin'\) has no write function"):
        img.export("plain", tmp_path / "out.plain")
    img = OMEArrow(PIXELS, "TZCYX", registry=registry(Plugin()))
    img.export("plain", tmp_path / "out.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), PIXELS)


@pytest.mark.parametrize("source", [PlainSource, SubclassedSource])
def test_sources_without_describe_get_the_default(plain_file: Path, source: type[PlainSource]) -> None:
    img = OMEArrow.scan(plain_file, registry=registry(Plugin(source)))
    assert img.source.describe() == {}
    info = img.info()
    assert info["lazy"] is True and "storage" not in info
    np.testing.assert_array_equal(img.tensor_view(t=1, layout="CYX").to_numpy(), PIXELS[1, 0])
    assert img.source.reads == 1  # the plugin's own attributes are still there
    assert isinstance(img.source, source) == (source is SubclassedSource)  # only the plain one is wrapped
    again = OMEArrow.from_source(pickle.loads(pickle.dumps(img.source)))  # a wrapped source pickles
    np.testing.assert_array_equal(again.to_numpy(layout="TZCYX"), PIXELS)
    eager = OMEArrow(plain_file, registry=registry(Plugin(source)))
    assert eager.info()["storage"] == "file"  # read into memory; "file" as before describe() was required


def test_from_source_is_the_internal_constructor(plain_file: Path) -> None:
    params = inspect.signature(OMEArrow.__init__).parameters
    assert not [p for p in params if p.startswith("_")]  # no private keywords on the public constructor
    src = SubclassedSource(plain_file)
    img = OMEArrow.from_source(src)
    assert img.is_lazy and img.source is src and img.meta.shape == PIXELS.shape
    part = OMEArrow.from_source(src, Selection.full(src.meta.sizes).select(c=1), lazy=False)
    assert not part.is_lazy and part.shape == (2, 1, 1, 6, 7)
    np.testing.assert_array_equal(part.to_numpy(), PIXELS[:, :, 1:2])
