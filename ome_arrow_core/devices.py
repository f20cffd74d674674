"""Device strings: ``"cpu"``, ``"cuda"``, ``"cuda:1"``."""

from __future__ import annotations

from .errors import DeviceError

__all__ = ["parse_device", "check_cuda_device"]

_KNOWN = ("cpu", "cuda")


def parse_device(device: str | None) -> tuple[str, int]:
    """Split ``device`` into (kind, index); ``None`` means the CPU."""
    if device is None:
        return "cpu", 0
    text = str(device).strip().lower()
    kind, _, idx = text.partition(":")
    if kind == "gpu":
        kind = "cuda"
    if kind not in _KNOWN:
        raise DeviceError(f"Unsupported device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")
    if not idx:
        return kind, 0
    if not idx.isdigit():
        raise DeviceError(f"device index in {device!r} must be a non-negative integer")
    return kind, int(idx)


def check_cuda_device(index: int, count: int, library: str, none_hint: str) -> None:
    """Raise DeviceError unless ``cuda:{index}`` is one of the ``count`` CUDA devices ``library`` sees.

    ``none_hint`` ends the message when there are none: why, and how to fix it.
    """
    if count <= 0:
        raise DeviceError(
            f"cuda:{index} was requested but {library} sees no CUDA device: {none_hint}; or use device='cpu'"
        )
    if index >= count:
        raise DeviceError(
            f"device 'cuda:{index}' does not exist; {library} sees {count} CUDA device(s): "
            f"use cuda:0 to cuda:{count - 1}"
        )
