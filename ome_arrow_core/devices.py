"""Device strings: ``"cpu"``, ``"cuda"``, ``"cuda:1"``."""

from __future__ import annotations

from .errors import DeviceError

__all__ = ["parse_device"]

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
