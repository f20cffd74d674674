"""How the command line words an exception: one line."""

from __future__ import annotations

from ..errors import OMEArrowError

__all__ = ["error_line"]


def error_line(exc: BaseException) -> str:
    """One line for ``exc``: our errors by their message, any other with its type in front."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if isinstance(exc, OMEArrowError) or (isinstance(exc, OSError) and exc.strerror):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
