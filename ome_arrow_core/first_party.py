"""The backends this project ships, known to the core even when they are not installed.

A registry lists them (``ome-arrow-core plugins``) with the exact install command when their
distribution is missing or blocked, and a path or format that only one of them handles gets
an error naming the extra to install instead of "unknown suffix".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import BackendUnavailableError, PluginError
from .handlers import install_hint
from .plugin_manager import BLOCK_ENV

__all__ = ["FirstParty", "FIRST_PARTY", "for_path", "for_format", "installed_version", "raise_missing"]


@dataclass(frozen=True)
class FirstParty:
    """One first-party backend: its entry-point name, distribution, extra and what it handles."""

    name: str
    distribution: str
    extra: str
    handles: str
    suffixes: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    #: "backend" (a plugin found through entry points) or "integration" (a package you import).
    kind: str = "backend"

    @property
    def install(self) -> str:
        """The pip command that installs it."""
        return install_hint(self.extra, ())


#: Every backend distribution under ``backends/``, by entry-point name.
FIRST_PARTY: Final[dict[str, FirstParty]] = {
    p.name: p
    for p in (
        FirstParty(
            "tiff",
            "ome-arrow-tiff",
            "tiff",
            "TIFF / OME-TIFF read and write",
            (".ome.tiff", ".ome.tif", ".ome.btf", ".tiff", ".tif", ".btf", ".tf8", ".tf2"),
            ("ome-tiff", "tiff"),
        ),
        FirstParty(
            "vortex", "ome-arrow-vortex", "vortex", "Vortex files and dataset chunk files", (".vortex",), ("vortex",)
        ),
        FirstParty(
            "zarr",
            "ome-arrow-zarr",
            "zarr",
            "OME-Zarr (OME-NGFF 0.4/0.5) read and write",
            (".ome.zarr", ".zarr"),
            ("ome-zarr", "zarr"),
        ),
        FirstParty(
            "bioio",
            "ome-arrow-bioio",
            "bioio",
            "every format an installed bioio reader plugin opens (fallback after tiff and zarr)",
            (
                ".czi",
                ".nd2",
                ".lif",
                ".dv",
                ".r3d",
                ".sldy",
                ".ims",
                ".lsm",
                ".png",
                ".jpg",
                ".jpeg",
                ".gif",
                ".bmp",
                ".oib",
                ".oif",
                ".vsi",
                ".svs",
                ".ndpi",
                ".lei",
                ".ome.tiff",
                ".ome.tif",
                ".tiff",
                ".tif",
                ".ome.zarr",
                ".zarr",
            ),
        ),
        FirstParty("torch", "ome-arrow-torch", "torch", "torch.Tensor ingest, to_torch(), DataLoader datasets"),
        FirstParty("jax", "ome-arrow-jax", "jax", "jax.Array ingest, to_jax()"),
        FirstParty("cupy", "ome-arrow-cupy", "cupy", "to_dlpack(device='cuda') and cupy ingest"),
        FirstParty(
            "dask", "ome-arrow-dask", "dask", "to_dask(): Dask arrays of images and datasets", kind="integration"
        ),
        FirstParty("ray", "ome-arrow-ray", "ray", "Ray Data datasets of images", kind="integration"),
        FirstParty(
            "napari",
            "ome-arrow-napari",
            "napari",
            "napari reader plugin (npe2): lazy, multiscale layers",
            kind="integration",
        ),
    )
}


def for_path(path: str | Path) -> FirstParty | None:
    """The first-party backend whose suffixes match ``path`` (None if none does)."""
    name = Path(path).name.lower()
    for p in FIRST_PARTY.values():
        if any(name.endswith(s) for s in p.suffixes):
            return p
    return None


def for_format(fmt: str) -> FirstParty | None:
    """The first-party backend that reads or writes format ``fmt`` (None if none does)."""
    for p in FIRST_PARTY.values():
        if fmt in p.formats:
            return p
    return None


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` ("" when it is not installed)."""
    import importlib.metadata as md

    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return ""


def raise_missing(backend: FirstParty | None, what: str, blocked: Collection[str]) -> None:
    """Raise naming ``backend`` (blocked, or its install command) when it would handle ``what`` (a registry that
    found no handler for it; ``blocked``: the registry's blocked names)."""
    if backend is None:
        return
    if backend.name in blocked:
        raise PluginError(
            f"{what} is handled by the {backend.name!r} plugin ({backend.distribution}), which is blocked by "
            f"{BLOCK_ENV}; remove {backend.name!r} from it"
        )
    if installed_version(backend.distribution):
        raise PluginError(
            f"{what} is handled by the {backend.name!r} plugin ({backend.distribution}), which is installed "
            "but not registered in this registry (autoload=False?): register it or use the default registry"
        )
    raise BackendUnavailableError(
        f"{what} needs the {backend.name!r} backend ({backend.distribution}), which is not installed; "
        f"install it with: {backend.install}"
    )
