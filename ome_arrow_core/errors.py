"""The exceptions ome-arrow-core raises.

Every error derives from :class:`OMEArrowError`; each also derives from the builtin
exception a caller would expect (``ValueError``, ``TypeError``, ``IndexError``,
``ImportError``) so generic ``except`` clauses keep working.
Messages say what was wrong, what was expected and how to fix it.
"""

from __future__ import annotations

from typing import Any

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
    "ArgumentError",
    "DamagedFileError",
    "ChecksumError",
    "StorageError",
    "NotFoundError",
    "UnsafeOverwriteError",
    "SelectionTypeError",
    "ArgumentTypeError",
]


#: Local paths messages show as what they stand for (a remote dataset's local mirror: its URI); see :func:`show_as`.
_SHOWN: dict[str, str] = {}


def show_as(local: str, shown: str) -> None:
    """Show directory ``local`` as ``shown`` in the messages of the errors made from now on in this process (a
    remote dataset's mirror as its URI: the user named the URI, never saw the mirror)."""
    _SHOWN[local.rstrip("/")] = shown.rstrip("/")


def shown(text: str) -> str:
    """``text`` with each local path registered by :func:`show_as` replaced by what it stands for."""
    for local, uri in _SHOWN.items():
        if local in text:
            text = text.replace(local, uri)
    return text


class OMEArrowError(Exception):
    """Base class of every ome-arrow-core error (its message shows mirrors as their URIs: :func:`show_as`)."""

    def __init__(self, *args: object) -> None:
        if _SHOWN and args and isinstance(args[0], str):
            args = (shown(args[0]), *args[1:])
        super().__init__(*args)


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


class ArgumentError(OMEArrowError, ValueError):
    """An argument passed to a function is invalid (a wrong value, not a damaged file)."""


class DamagedFileError(SchemaError):
    """A file's bytes or metadata are damaged: truncated, flipped, or disagreeing with each other."""


class ChecksumError(DamagedFileError):
    """Stored bytes do not match the checksum written with them."""


class StorageError(OMEArrowError, OSError):
    """The operating system refused a read or write (missing, not a regular file, no permission, disk full)."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its ``errno`` (OSError's pickling keeps the message only): an ESTALE raised in a worker
        process is one in the parent."""
        return (type(self), self.args, {**self.__dict__, "errno": self.errno})


class NotFoundError(StorageError, FileNotFoundError):
    """What was opened is not there: a missing file, or an object, bucket or URL a store does not have."""


class UnsafeOverwriteError(OMEArrowError, FileExistsError):
    """An output exists and is not recognisably ours to replace (it is kept as it is)."""


class SelectionTypeError(SelectionError, TypeError):
    """An index or row number is not an integer (``ds[1.0]``, ``row="a"``)."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of a type the function does not take (``to_dask(np_array)``, an option it has no parameter for)."""
