"""The exceptions ome-arrow-core raises.

Every error derives from :class:`OMEArrowError`; each also derives from the builtin
exception a caller would expect (``ValueError``, ``TypeError``, ``IndexError``,
``ImportError``) so generic ``except`` clauses keep working.
Messages say what was wrong, what was expected and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "OMEArrowError",
    "SchemaError",
    "FormatVersionError",
    "DTypeError",
    "LayoutError",
    "SelectionError",
    "PluginError",
    "BackendUnavailableError",
    "DeviceError",
]


class OMEArrowError(Exception):
    """Base class of every ome-arrow-core error."""


class SchemaError(OMEArrowError, ValueError):
    """A table, record or file is not OME-Arrow, or misses required fields."""


class FormatVersionError(SchemaError):
    """A file was written in a format version this reader does not know."""


class DTypeError(OMEArrowError, TypeError):
    """A pixel dtype cannot be stored as OME-Arrow."""


class LayoutError(OMEArrowError, ValueError):
    """A layout or dim_order string is invalid or cannot hold the selection."""


class SelectionError(OMEArrowError, IndexError):
    """A t/z/c/roi/tile selection is out of range or malformed."""


class PluginError(OMEArrowError, LookupError):
    """No plugin handles the request, or a plugin misbehaved."""


class BackendUnavailableError(PluginError, ImportError):
    """A backend exists but its library is not installed."""


class DeviceError(OMEArrowError, ValueError):
    """A device is unknown or cannot be reached from this process."""
