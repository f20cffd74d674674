"""Notebook HTML: a thumbnail as a data URI beside a small table of what the object is."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping
from typing import Any

from ..meta import ImageMeta

__all__ = ["data_uri", "facts_table", "image_facts", "figure"]

_STYLE = "border-collapse:collapse;font-size:12px;text-align:left"


def data_uri(png: bytes) -> str:
    """``png`` as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _size_text(value: float | None, unit: str | None) -> str:
    return "unknown" if value is None else f"{value:g} {unit or ''}".rstrip()


def image_facts(meta: ImageMeta) -> dict[str, str]:
    """What the HTML block says about an image: id, name, sizes, dtype, pixel sizes, channels."""
    sizes = meta.sizes
    physical = ", ".join(f"{a}={_size_text(meta.physical_size.get(a), meta.physical_unit.get(a))}" for a in "XYZ")
    return {
        "id": str(meta.id),
        "name": str(meta.name),
        "shape (TZCYX)": " × ".join(str(sizes[a]) for a in "TZCYX"),
        "sizes": ", ".join(f"{a}={sizes[a]}" for a in "TZCYX"),
        "dtype": meta.dtype.name,
        "pixel size": physical,
        "channels": ", ".join(c.name or c.id for c in meta.channels),
    }


def facts_table(facts: Mapping[str, Any]) -> str:
    """A two-column HTML table of ``facts`` (keys and values escaped)."""
    rows = "".join(
        f"<tr><th style='padding:0 8px 0 0'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    return f"<table style='{_STYLE}'>{rows}</table>"


def figure(png: bytes | None, caption: Iterable[str], *, error: str | None = None) -> str:
    """One cell: the thumbnail (or the error that kept it from being drawn) above caption lines."""
    if png is None:
        body = f"<div style='color:#b00;max-width:16em'>{html.escape(error or 'not drawn')}</div>"
    else:
        body = f"<img src='{data_uri(png)}' style='image-rendering:pixelated'/>"
    lines = "".join(f"<div>{html.escape(line)}</div>" for line in caption)
    return (
        f"<figure style='margin:4px;display:inline-block;vertical-align:top;font-size:11px'>{body}"
        f"<figcaption>{lines}</figcaption></figure>"
    )
