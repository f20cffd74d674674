"""Writes replace only what is ours, follow the umask and keep committed appends (cleaning up after killed writes:
test_killed_write_cleanup.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import writes_support as ws

from ome_arrow_core import OMEArrow, OMEArrowDataset, cleanup_dataset, write_dataset
from ome_arrow_core.cli import main
from ome_arrow_core.errors import UnsafeOverwriteError
from ome_arrow_core.safe_write import atomic_path
from ome_arrow_core.safe_write.ownership import temp_name
from ome_arrow_core.typed_chunk import append

IMG = ws.images(7, 1)[0]


def _writers(target: Path) -> dict[str, object]:
    """Every way of replacing a directory with a dataset; each returns what it raised (or None)."""

    def export() -> None:
        OMEArrow(IMG, dim_order="CYX").export("parquet", target)

    def overwrite() -> None:
        ws.write(target, 3, mode="overwrite")

    def cli() -> None:
        npy = target.parent / "in.npy"
        np.save(npy, IMG)
        assert main(["convert", str(npy), "-o", str(target), "--to", "parquet", "-q", "--force"]) == 1
        raise UnsafeOverwriteError("the CLI refused")  # it prints one line and exits 1

    return {"export": export, "overwrite": overwrite, "cli": cli}


def _foreign(tmp: Path, kind: str) -> Path:
    """A target that is not ours to replace."""
    if kind == "plain-dir":
        (tmp / "out").mkdir()
        (tmp / "out" / "thesis.docx").write_text("years of work")
        return tmp / "out"
    if kind == "empty-dir":
        (tmp / "out").mkdir()
        return tmp / "out"
    if kind == "dataset-with-user-file":
        ws.write(tmp / "out", 1)
        (tmp / "out" / "notes.txt").write_text("mine")
        return tmp / "out"
    if kind == "dataset-with-subdir":
        ws.write(tmp / "out", 1)
        (tmp / "out" / "images.parquet.d").mkdir()
        return tmp / "out"
    if kind == "symlink-to-dataset":
        ws.write(tmp / "elsewhere", 1)
        (tmp / "out").symlink_to(tmp / "elsewhere")
        return tmp / "out"
    assert kind == "file"
    (tmp / "out").write_text("a file")
    return tmp / "out"


KINDS = ["plain-dir", "empty-dir", "dataset-with-user-file", "dataset-with-subdir", "symlink-to-dataset", "file"]


@pytest.mark.parametrize("how", ["export", "overwrite", "cli"])
@pytest.mark.parametrize("kind", KINDS)
def test_overwrite_refuses_what_is_not_ours(
    tmp_path: Path, kind: str, how: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _foreign(tmp_path, kind)
    before = ws.tree(tmp_path)
    with pytest.raises(UnsafeOverwriteError) as err:
        _writers(target)[how]()  # type: ignore[operator]
    if how == "cli":
        message = capsys.readouterr().err
        assert message.count("\n") == 1 and message.startswith("error: ")
    else:
        message = str(err.value)
    assert str(target) in message and "nothing was changed" in message
    after = ws.tree(tmp_path)
    after.pop("in.npy", None)
    assert after == before


@pytest.mark.parametrize("how", ["export", "overwrite"])
def test_overwrite_refuses_the_current_directory(tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.write(tmp_path / "ds", 1)
    for here, target in [(tmp_path / "ds", Path(".")), (tmp_path / "ds", tmp_path / "ds"), (tmp_path, Path("."))]:
        monkeypatch.chdir(here)
        before = ws.tree(tmp_path)
        with pytest.raises(UnsafeOverwriteError, match="current directory|not an OME-Arrow dataset"):
            _writers(target)[how]()  # type: ignore[operator]
        assert ws.tree(tmp_path) == before


def test_overwrite_replaces_our_datasets(tmp_path: Path) -> None:
    ours = tmp_path / "ours"
    ws.write(ours, 1)
    ws.write(ours, 1, mode="append", n=2)
    (ours / ".append-00009.pending").touch()  # an append's marker
    stale = ours / temp_name("index-00003.parquet")  # a killed write's temporary
    stale.mkdir()
    ws.write(ours, 2, mode="overwrite", n=1)
    assert ws.same(ws.read(ours), ws.images(2, 1))
    assert sorted(os.listdir(ours)) == [
        "THIS-IS-AN-OME-ARROW-DATASET.txt",
        "_ome_arrow_dataset.json",
        "chunks.parquet",
        "images.parquet",
        "index.parquet",
    ]
    reference = tmp_path / "reference"  # ome-arrow 0.1.0's layout: no manifest
    ws.write(reference, 1, n=1)  # one image: an export replaces it (a plate it refuses: test_first_calls)
    (reference / "_ome_arrow_dataset.json").unlink()
    OMEArrow(IMG, dim_order="CYX").export("parquet", reference)
    assert ws.same(ws.read(reference), [IMG])
    assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path), key=lambda n: n) or True
    assert sorted(os.listdir(tmp_path)) == ["ours", "reference"]


def test_files_replace_files_never_directories(tmp_path: Path) -> None:
    record = tmp_path / "img.parquet"
    OMEArrow(IMG, dim_order="CYX").export("parquet", record, layout="record")
    OMEArrow(IMG + 1, dim_order="CYX").export("parquet", record, layout="record")
    assert np.array_equal(OMEArrow.scan(record).to_numpy()[0, :, 0], IMG + 1)
    ws.write(tmp_path / "ds.parquet", 1)
    before = ws.tree(tmp_path)
    with pytest.raises(UnsafeOverwriteError, match="is a directory"):
        OMEArrow(IMG, dim_order="CYX").export("parquet", tmp_path / "ds.parquet", layout="record")
    assert ws.tree(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == ["ds.parquet", "img.parquet"]


def test_create_refuses_anything_existing(tmp_path: Path) -> None:
    ws.write(tmp_path / "ds", 1)
    with pytest.raises(UnsafeOverwriteError, match="mode='overwrite'"):
        ws.write(tmp_path / "ds", 2)
    assert ws.same(ws.read(tmp_path / "ds"), ws.images(1))


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_directories_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        ws.write(tmp_path / "ds", 1)
        ws.write(tmp_path / "ds", 1, mode="overwrite")
        OMEArrow(IMG, dim_order="CYX").export("parquet", tmp_path / "img.parquet", layout="record")
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "ds").st_mode & 0o777 == 0o777 & ~umask
    for name in os.listdir(tmp_path / "ds"):
        assert os.stat(tmp_path / "ds" / name).st_mode & 0o777 == 0o666 & ~umask, name
    assert os.stat(tmp_path / "img.parquet").st_mode & 0o777 == 0o666 & ~umask


def test_an_append_committed_before_a_failure_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.write(tmp_path / "ds", 1)
    real = append.write_manifest

    def commit_then_fail(*a: object, **kw: object) -> None:
        real(*a, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # after the commit point

    monkeypatch.setattr(append, "write_manifest", commit_then_fail)
    with pytest.raises(KeyboardInterrupt):
        ws.write(tmp_path / "ds", 2, mode="append", n=2)
    monkeypatch.undo()
    assert ws.same(ws.read(tmp_path / "ds"), ws.images(1) + ws.images(2, 2))


def test_an_append_failing_before_its_commit_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws.write(tmp_path / "ds", 1)
    before = ws.tree(tmp_path)

    def fail(*a: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(append, "write_manifest", fail)
    with pytest.raises(KeyboardInterrupt):
        ws.write(tmp_path / "ds", 2, mode="append", n=2)
    assert ws.tree(tmp_path) == before


def _multirow_table(path: Path, arrs: list[np.ndarray]) -> None:
    records = [OMEArrow(a, dim_order="CYX").export("arrow") for a in arrs]
    pq.write_table(pa.table({"ome_arrow": pa.concat_arrays(records)}), path)


def test_cli_convert_writes_every_image_and_refuses_existing_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.ome.parquet"
    ws.write(src, 1)
    out = tmp_path / "out.ome.parquet"
    assert main(["convert", str(src), "-o", str(out)]) == 0
    assert "(3 image(s)" in capsys.readouterr().out
    assert ws.same(ws.read(out), ws.images(1))
    assert OMEArrowDataset.scan(out).table.column("image_id").to_pylist() == [
        "image-00000",
        "image-00001",
        "image-00002",
    ]
    assert main(["convert", str(src), "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["convert", str(src), "-o", str(out), "--mode", "append", "-q"]) == 0
    assert ws.same(ws.read(out), ws.images(1) * 2)
    table = tmp_path / "table.parquet"
    _multirow_table(table, ws.images(5, 2))
    assert main(["convert", str(table), "-o", str(out), "--force"]) == 0
    assert "(2 image(s)" in capsys.readouterr().out
    assert ws.same(ws.read(out), ws.images(5, 2))
    assert main(["convert", str(src), "-o", str(tmp_path / "one.vortex"), "-q"]) == 1
    assert "3 images" in capsys.readouterr().err and not (tmp_path / "one.vortex").exists()


def test_manifest_of_a_dataset_stays_json_after_overwrites(tmp_path: Path) -> None:
    ws.write(tmp_path / "ds", 1)
    write_dataset([IMG], tmp_path / "ds", mode="overwrite", dim_order="CYX", progress=False)
    manifest = json.loads((tmp_path / "ds" / "_ome_arrow_dataset.json").read_text())
    assert manifest["image_count"] == 1


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_a_target_made_by_another_writer_mid_swap_loses_no_copy(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename-aside swap: another writer (ignoring our lock) puts something at the target between our two
    renames. Nothing is removed: theirs stays, the previous dataset is kept at a name no cleanup removes, and the
    error says where."""
    from ome_arrow_core.safe_write import atomic

    monkeypatch.setattr(atomic, "EXCHANGE", False)
    target = tmp_path / "plate.ome.parquet"
    ws.write(target, 1)
    before = ws.read(target)
    real = os.rename

    def rename(src: object, dst: object, *a: object, **k: object) -> None:
        if Path(str(dst)) == target and Path(str(src)).name.startswith("."):  # our new copy going in
            if kind == "directory":
                (target / "sub").mkdir(parents=True)
                (target / "sub" / "theirs.txt").write_text("theirs")
            else:
                target.write_text("theirs")
        real(src, dst, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(UnsafeOverwriteError, match="previous copy is kept") as err:
        ws.write(target, 2, mode="overwrite")
    monkeypatch.setattr(os, "rename", real)
    kept = tmp_path / "plate.ome.parquet.previous"
    assert str(kept) in str(err.value)
    assert ws.same(ws.read(kept), before)
    theirs = target / "sub" / "theirs.txt" if kind == "directory" else target
    assert theirs.read_text() == "theirs"
    cleanup_dataset(kept)  # a cleanup of either finds nothing of ours to remove there
    assert ws.same(ws.read(kept), before)
    assert sorted(os.listdir(tmp_path)) == ["plate.ome.parquet", "plate.ome.parquet.previous"]


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "symlink"])
@pytest.mark.parametrize("fmt", ["vortex", "ome-tiff", "parquet-record", "atomic_path"])
def test_files_replace_regular_files_only(tmp_path: Path, kind: str, fmt: str) -> None:
    """An output file never replaces a FIFO, a socket, a device node or a symbolic link (as root an export to
    /dev/null removed the device): UnsafeOverwriteError, and the path is as it was."""
    import socket
    import stat

    target = tmp_path / ("out.vortex" if fmt == "vortex" else "out.ome.tiff")
    held = None
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        held = socket.socket(socket.AF_UNIX)
        held.bind(str(target))
    elif kind == "device":
        if os.geteuid() != 0:
            pytest.skip("making a device node takes root")
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    else:
        (tmp_path / "mine.bin").write_bytes(b"years of work")
        target.symlink_to(tmp_path / "mine.bin")
    before = ws.tree(tmp_path) if kind == "symlink" else None
    mode = os.lstat(target).st_mode
    img = OMEArrow(IMG, dim_order="CYX")
    try:
        with pytest.raises(UnsafeOverwriteError, match="nothing was changed"):
            if fmt == "atomic_path":  # what the thumbnail and compat writers use
                with atomic_path(target) as tmp:
                    tmp.write_bytes(b"new")
            elif fmt == "parquet-record":
                img.export("parquet", target, layout="record")
            else:
                img.export(fmt, target)
    finally:
        if held is not None:
            held.close()
    assert os.lstat(target).st_mode == mode
    assert sorted(os.listdir(tmp_path)) == sorted(["mine.bin", target.name] if kind == "symlink" else [target.name])
    if before is not None:
        assert ws.tree(tmp_path) == before


@pytest.mark.parametrize("how", ["compact", "append"])
@pytest.mark.parametrize("named", ["../victim.txt", "../victim.parquet", "absolute"])
def test_a_manifest_naming_files_outside_the_dataset_deletes_nothing(tmp_path: Path, how: str, named: str) -> None:
    """A damaged or crafted manifest listing a chunk file outside the dataset ('../thesis.docx', an absolute path):
    a compaction deleted that file once it had merged the dataset (the names it lists are merged, then removed);
    an append kept the name in the manifest it wrote. Both are DamagedFileError now, before anything is written."""
    from ome_arrow_core import compact_dataset
    from ome_arrow_core.errors import DamagedFileError

    root = tmp_path / "plate"
    ws.write(root, 1)
    ws.write(root, 1, mode="append", n=2)
    (tmp_path / "victim.txt").write_text("years of work")
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "victim.parquet")
    name = str(tmp_path / "victim.parquet") if named == "absolute" else named
    manifest = json.loads((root / "_ome_arrow_dataset.json").read_text())
    manifest["ome_arrow_core"]["fragments"].append(name)
    (root / "_ome_arrow_dataset.json").write_text(json.dumps(manifest))
    before = ws.tree(tmp_path)
    with pytest.raises(DamagedFileError, match="not a plain file name inside"):
        compact_dataset(root) if how == "compact" else ws.write(root, 1, mode="append", n=1)
    assert ws.tree(tmp_path) == before
