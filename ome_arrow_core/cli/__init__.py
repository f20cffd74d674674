"""The ``ome-arrow-core`` command: convert, info, thumbnail, compact, cleanup, plugins, verify.

Exit codes: 0 success, 1 error (one clear line; ``--debug`` shows the traceback), 2 usage,
130 interrupted (Ctrl-C), 141 when the reader of its output went away (``| head``), quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from ..errors import OMEArrowError
from . import convert, info, maintenance, plugins, thumbnail
from .errors import error_line

__all__ = ["main", "build_parser", "error_line", "INTERRUPTED", "BROKEN_PIPE"]

#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130
#: Exit code when stdout's reader closed the pipe (128 + SIGPIPE), as shells report it.
BROKEN_PIPE = 141


def _version() -> str:
    from .. import __version__

    return f"ome-arrow-core {__version__} (Python {sys.version.split()[0]})"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for docs and tests)."""
    parser = argparse.ArgumentParser(prog="ome-arrow-core", description="OME-Arrow images as tensors.")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    convert.add_parser(sub)
    info.add_parser(sub)
    thumbnail.add_parser(sub)
    plugins.add_parser(sub)
    maintenance.add_parsers(sub)
    return parser


def _stdout_gone() -> int:
    """Point stdout at /dev/null (so the interpreter's last flush does not complain) and exit quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no real file (tests capture it): nothing to redirect
        pass
    return BROKEN_PIPE


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """A warning as one line on stderr (no source line: the user did not write it)."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Any failure prints one line on stderr and exits 1 (130 after Ctrl-C); ``--debug`` adds the
    traceback. Usage errors exit 2. A closed stdout (``| head``) ends it quietly with 141.
    Warnings print as one ``warning:`` line each.
    """
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a pipe's reader that went away shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _stdout_gone()
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug or isinstance(exc, OMEArrowError) else " (--debug shows the traceback)"
        print(f"error: {error_line(exc)}{hint}", file=sys.stderr)
        return 1
