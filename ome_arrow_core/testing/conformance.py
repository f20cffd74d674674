"""The failure the conformance kit raises, and the check that raises it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..errors import SchemaError

__all__ = ["ConformanceError", "expect", "expect_our_error"]

T = TypeVar("T")


class ConformanceError(AssertionError):
    """A plugin broke the core's contract; the message names the check and what was seen."""


def expect(ok: bool, check: str, detail: str) -> None:
    """Raise ConformanceError for ``check`` with ``detail`` unless ``ok``."""
    if not ok:
        raise ConformanceError(f"{check}: {detail}")


def expect_our_error(
    check: str, action: Callable[[], object], wanted: tuple[type[BaseException], ...] = (SchemaError,)
) -> BaseException:
    """Run ``action``; it must raise one of ``wanted`` (not a foreign exception, not nothing)."""
    try:
        action()
    except wanted as exc:
        return exc
    except Exception as exc:  # a foreign exception: the plugin must wrap it (plugin_api.reading)
        names = " or ".join(w.__name__ for w in wanted)
        raise ConformanceError(
            f"{check}: raised {type(exc).__module__}.{type(exc).__name__} ({exc}); expected {names} "
            "(wrap foreign errors with ome_arrow_core.plugin_api.reading)"
        ) from exc
    names = " or ".join(w.__name__ for w in wanted)
    raise ConformanceError(f"{check}: raised nothing; expected {names}")
