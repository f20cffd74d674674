"""The sidecar of a remote dataset's local mirror (a pickle naming the remote objects): read only in a mirror this
user's processes made, never in a dataset directory someone handed over, where unpickling it ran any code it named."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from pixels import random_pixels
from servers import S3Server

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.remote import SIDECAR

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGES = [random_pixels((1, 16, 16), seed=i) for i in range(3)]


class _Marker:
    """Unpickled, it creates file ``path`` (what a sidecar in a downloaded dataset could do: anything)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (os.makedirs, (str(self.path),))


@pytest.mark.parametrize("mode", [0o600, 0o644])
def test_a_sidecar_in_a_local_dataset_is_never_unpickled(tmp_path: Path, mode: int) -> None:
    plate = write_dataset(IMAGES, tmp_path / "plate.ome.parquet", dim_order="CYX", progress=False)
    marker = tmp_path / "code-ran"
    sidecar = plate / SIDECAR
    sidecar.write_bytes(pickle.dumps((_Marker(marker), {"chunks.parquet": 1})))
    sidecar.chmod(mode)  # as this user wrote it (an archive unpacked keeps 0600)
    ds = OMEArrowDataset.scan(plate)
    for i, want in enumerate(IMAGES):
        np.testing.assert_array_equal(ds[i].to_numpy()[0, :, 0], want)  # read as the local dataset it is
    np.testing.assert_array_equal(ds.read().reshape(3, 1, 16, 16), np.stack(IMAGES))
    assert not marker.exists()


def _read_mirror(path: str) -> list[np.ndarray]:
    ds = OMEArrowDataset.scan(path)
    return [ds[i].to_numpy() for i in range(len(ds))]


def test_a_mirror_is_found_again_by_another_process(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the sidecar is for: a worker started by spawn that is handed the mirror's path reads the remote chunks."""
    from ome_arrow_core.location import resolve
    from ome_arrow_core.typed_chunk import mirror_dataset

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    local = write_dataset(IMAGES, tmp_path / "plate.ome.parquet", dim_order="CYX", progress=False)
    for f in sorted(local.iterdir()):
        s3_server.put("sidecars", f"plate.ome.parquet/{f.name}", f.read_bytes())
    mirror = mirror_dataset(resolve("s3://sidecars/plate.ome.parquet"))
    assert mirror is not None and (mirror / SIDECAR).exists()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_read_mirror, (str(mirror),))
    assert len(got) == len(IMAGES)
    for g, want in zip(got, IMAGES, strict=True):
        np.testing.assert_array_equal(g[0, :, 0], want)
