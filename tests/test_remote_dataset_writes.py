"""Writing dataset directories to the real S3 test server (moto): data objects first, the manifest last, appends
committed by a conditional put; failures injected at every upload leave readers the old state."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.fs as pafs
import pytest
from pixels import random_pixels
from servers import S3Server

from ome_arrow_core import OMEArrowDataset, write_dataset
from ome_arrow_core.errors import ArgumentError, StorageError, UnsafeOverwriteError
from ome_arrow_core.location import resolve
from ome_arrow_core.remote import LostRace
from ome_arrow_core.typed_chunk import write_remote_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

IMAGES = [random_pixels((2, 32, 32), seed=i) for i in range(4)]
MORE = [random_pixels((2, 32, 32), seed=10 + i) for i in range(2)]
OTHER = [random_pixels((2, 32, 32), seed=20 + i) for i in range(3)]


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh bucket name for this test, the endpoint in the environment, no faults left over."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    name = "w-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:24]
    s3_server.bucket(name)
    s3_server.clear_faults()
    yield name
    s3_server.clear_faults()


def _objects(server: S3Server, prefix: str) -> dict[str, int]:
    infos = server.filesystem().get_file_info(pafs.FileSelector(prefix, allow_not_found=True, recursive=True))
    return {i.path.rsplit("/", 1)[-1]: i.size for i in infos if i.type == pafs.FileType.File}


def _write(images: list[np.ndarray], uri: str, mode: str = "create") -> None:
    write_dataset(images, uri, dim_order="CYX", mode=mode, progress=False)  # type: ignore[arg-type]


def _images(uri: str) -> list[np.ndarray]:
    ds = OMEArrowDataset.scan(uri)
    return [ds[i].tensor_view(layout="CYX").to_numpy() for i in range(len(ds))]


def _same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_create_append_overwrite_round_trip(s3: str, s3_server: S3Server) -> None:
    uri = f"s3://{s3}/plate.ome.parquet"
    assert write_dataset(IMAGES, uri, dim_order="CYX", progress=False) == uri
    _same(_images(uri), IMAGES)
    with pytest.raises(UnsafeOverwriteError, match="exists"):
        _write(OTHER, uri)
    _write(MORE, uri, "append")
    _same(_images(uri), IMAGES + MORE)
    assert not any(n.endswith(".pending") for n in _objects(s3_server, f"{s3}/plate.ome.parquet"))
    _write(OTHER, uri, "overwrite")
    _same(_images(uri), OTHER)
    assert sorted(_objects(s3_server, f"{s3}/plate.ome.parquet")) == [
        "THIS-IS-AN-OME-ARROW-DATASET.txt",
        "_ome_arrow_dataset.json",
        "chunks.parquet",
        "images.parquet",
        "index.parquet",
    ]  # the append's objects went with the old dataset


@pytest.mark.parametrize(
    "failing", ["THIS-IS-AN-OME-ARROW-DATASET.txt", "chunks.parquet", "index.parquet", "images.parquet", "_ome_arrow"]
)
@pytest.mark.parametrize("cleanup", ["removes", "killed"])
def test_a_create_failing_at_any_upload_leaves_nothing_a_reader_opens(
    s3: str, s3_server: S3Server, failing: str, cleanup: str
) -> None:
    uri = f"s3://{s3}/plate.ome.parquet"
    s3_server.fail("PUT", f"/plate.ome.parquet/{failing}", 403)  # 403: not retried
    if cleanup == "killed":  # a writer killed after the failure removes nothing: its objects stay behind
        for _ in range(5):
            s3_server.fail("DELETE", "/plate.ome.parquet/", 403)
    with pytest.raises(StorageError):
        _write(IMAGES, uri)
    s3_server.clear_faults()
    left = _objects(s3_server, f"{s3}/plate.ome.parquet")
    assert "_ome_arrow_dataset.json" not in left
    if cleanup == "removes":
        assert left == {}  # what it uploaded was removed
    with pytest.raises(FileNotFoundError, match="holds no OME-Arrow dataset"):
        OMEArrowDataset.scan(uri)  # even with every data object there: no manifest, not a dataset yet
    _write(IMAGES, uri, "create" if cleanup == "removes" else "overwrite")  # what a killed create left is ours
    _same(_images(uri), IMAGES)


@pytest.mark.parametrize(
    "failing", [".append-00001.pending", "chunks-00001", "index-00001", "images-00001", "_ome_arrow_dataset.json"]
)
@pytest.mark.parametrize("cleanup", ["removes", "killed"])
def test_an_append_failing_at_any_upload_leaves_readers_the_old_state(
    s3: str, s3_server: S3Server, failing: str, cleanup: str
) -> None:
    uri = f"s3://{s3}/plate.ome.parquet"
    _write(IMAGES, uri)
    before = _objects(s3_server, f"{s3}/plate.ome.parquet")
    s3_server.fail("PUT", f"/plate.ome.parquet/{failing}", 403)
    if cleanup == "killed":  # a writer killed after the failure removes nothing: its objects stay behind
        for _ in range(5):
            s3_server.fail("DELETE", "/plate.ome.parquet/", 403)
    with pytest.raises(StorageError):
        _write(MORE, uri, "append")
    s3_server.clear_faults()
    after = _objects(s3_server, f"{s3}/plate.ome.parquet")
    assert {n: after[n] for n in before} == before  # nothing of the old dataset touched
    if cleanup == "removes":
        assert after == before
    _same(_images(uri), IMAGES)  # readers: the old state, unlisted leftovers ignored
    _write(MORE, uri, "append")  # the next append steps over any leftovers
    _same(_images(uri), IMAGES + MORE)


def test_two_appenders_with_the_same_names_one_wins(s3: str, s3_server: S3Server) -> None:
    """B reads the dataset, A appends and commits, then B uploads: B loses at its first data object (A's names),
    before touching any of A's objects, and removes its own."""
    uri = f"s3://{s3}/plate.ome.parquet"
    _write(IMAGES, uri)
    target = resolve(uri)

    def b_writes(path: Path, how: str) -> object:
        _write(MORE, uri, "append")  # A, between B's read and B's uploads
        return write_dataset(OTHER[:1], path, dim_order="CYX", mode=how, progress=False)  # type: ignore[arg-type]

    won = _objects(s3_server, f"{s3}/plate.ome.parquet")
    with pytest.raises(LostRace, match="another writer"):
        write_remote_dataset(target, "append", b_writes)
    after = _objects(s3_server, f"{s3}/plate.ome.parquet")
    assert set(won) < set(after) and not any(n.endswith(".pending") for n in after)
    _same(_images(uri), IMAGES + MORE)  # A's append, intact


def test_a_manifest_changed_since_it_was_read_makes_the_append_lose(s3: str, s3_server: S3Server) -> None:
    """The manifest is put with If-Match on the version read: a newer manifest (another writer's) wins."""
    uri = f"s3://{s3}/plate.ome.parquet"
    _write(IMAGES, uri)
    target = resolve(uri)
    manifest = "plate.ome.parquet/_ome_arrow_dataset.json"
    original = s3_server.filesystem().open_input_stream(f"{s3}/{manifest}").read()

    def b_writes(path: Path, how: str) -> object:
        s3_server.put(s3, manifest, original + b"\n")  # another writer's new manifest version
        return write_dataset(MORE, path, dim_order="CYX", mode=how, progress=False)  # type: ignore[arg-type]

    before = _objects(s3_server, f"{s3}/plate.ome.parquet")
    with pytest.raises(LostRace):
        write_remote_dataset(target, "append", b_writes)
    assert sorted(_objects(s3_server, f"{s3}/plate.ome.parquet")) == sorted(before)  # B's objects removed
    _same(_images(uri), IMAGES)


def test_overwrite_refuses_what_is_not_ours_and_deletes_nothing(s3: str, s3_server: S3Server) -> None:
    uri = f"s3://{s3}/plate.ome.parquet"
    _write(IMAGES, uri)
    s3_server.put(s3, "plate.ome.parquet/notes.txt", b"mine")
    before = _objects(s3_server, f"{s3}/plate.ome.parquet")
    with pytest.raises(UnsafeOverwriteError, match="notes.txt"):
        _write(OTHER, uri, "overwrite")
    s3_server.put(s3, "other/data.csv", b"a,b")
    with pytest.raises(UnsafeOverwriteError, match="not an OME-Arrow dataset"):
        _write(OTHER, f"s3://{s3}/other", "overwrite")
    assert _objects(s3_server, f"{s3}/plate.ome.parquet") == before
    assert _objects(s3_server, f"{s3}/other") == {"data.csv": 3}
    _same(_images(uri), IMAGES)


def test_http_is_read_only_and_fsspec_filesystems_write(
    s3: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ArgumentError, match="read-only"):
        _write(IMAGES, "http://127.0.0.1:9/plate.ome.parquet")
    s3fs = pytest.importorskip("s3fs")
    fs = s3fs.S3FileSystem(endpoint_url=s3_server.endpoint, key="testing", secret="testing")
    write_dataset(IMAGES, f"{s3}/fsspec.ome.parquet", dim_order="CYX", progress=False, filesystem=fs)
    _same(_images(f"s3://{s3}/fsspec.ome.parquet"), IMAGES)
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server.endpoint


def test_create_and_overwrite_refuse_folders_and_an_object_at_the_target(s3: str, s3_server: S3Server) -> None:
    s3_server.put(s3, "project/raw/cells.tif", b"mine")  # nothing directly under project/: only a folder
    s3_server.put(s3, "plate.ome.parquet", b"an object")  # an object where the dataset's directory would go
    for mode in ("create", "overwrite"):
        with pytest.raises(UnsafeOverwriteError, match=r"raw/|not an OME-Arrow dataset"):
            _write(IMAGES, f"s3://{s3}/project", mode)
        with pytest.raises(UnsafeOverwriteError, match="is an object"):
            _write(IMAGES, f"s3://{s3}/plate.ome.parquet", mode)
    _write(IMAGES, f"s3://{s3}/plate2.ome.parquet")
    s3_server.put(s3, "plate2.ome.parquet/keep/notes.txt", b"mine")  # a folder inside one of our datasets
    with pytest.raises(UnsafeOverwriteError, match=r"keep/"):
        _write(OTHER, f"s3://{s3}/plate2.ome.parquet", "overwrite")
    assert _objects(s3_server, f"{s3}/project") == {"cells.tif": 4}
    assert s3_server.filesystem().get_file_info(f"{s3}/plate.ome.parquet").size == 9
    assert _objects(s3_server, f"{s3}/plate.ome.parquet") == {}  # nothing was written beside it
    _same(_images(f"s3://{s3}/plate2.ome.parquet"), IMAGES)


def test_a_key_with_an_empty_dot_or_dot_dot_component_is_an_argument_error(s3: str) -> None:
    for uri in (f"s3://{s3}//plate.ome.parquet", f"s3://{s3}/plate.ome.parquet/..", f"s3://{s3}/./plate", "s3://"):
        with pytest.raises(ArgumentError, match="s3://"):
            _write(IMAGES, uri)
        with pytest.raises(ArgumentError, match="s3://"):
            OMEArrowDataset.scan(uri)


@pytest.mark.parametrize("failing", ["index.parquet", "images.parquet", "_ome_arrow_dataset.json"])
def test_an_overwrite_failing_after_its_first_data_object_reads_as_damaged_never_as_pixels(
    s3: str, s3_server: S3Server, failing: str
) -> None:
    """What docs/clusters.md says of a remote overwrite cut short: the store cannot swap many objects at once, so
    the old manifest lists tables partly replaced; every read raises (never the old images' rows over the new
    pixels) until an overwrite completes. The old images are lost: the documented limit."""
    from ome_arrow_core.errors import OMEArrowError

    uri = f"s3://{s3}/plate.ome.parquet"
    _write(IMAGES, uri)
    s3_server.fail("PUT", f"/plate.ome.parquet/{failing}", 403)
    with pytest.raises(StorageError):
        _write(OTHER, uri, "overwrite")
    s3_server.clear_faults()
    with pytest.raises(OMEArrowError, match="damaged|checksum|do not match"):
        _images(uri)
    _write(OTHER, uri, "overwrite")
    _same(_images(uri), OTHER)
