"""The row-group lists of a plate in a sidecar (``_ome_arrow_groups.<digest>.json``, see
ome_arrow_core.typed_chunk.group_lists): the manifest stays the same size as images are added, ``scan`` and ``len``
never open the sidecar, and a missing, truncated, resized, swapped or flipped sidecar gives the tables hashed whole
or an error naming it, never other pixels or another count."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ome_arrow_core import OMEArrowDataset, cleanup_dataset, compact_dataset, verify, write_dataset
from ome_arrow_core.errors import ChecksumError, DamagedFileError, StorageError
from ome_arrow_core.typed_chunk.group_lists import LISTED_KEYS, LISTS_KEY
from ome_arrow_core.typed_chunk.group_records import recorded_rows
from ome_arrow_core.typed_chunk.spec import MANIFEST


def _pixels(seed: int, n: int) -> list[np.ndarray]:
    return [((np.arange(64) + 7 * (seed * 1000 + i)) % 4096).astype(np.uint16).reshape(1, 8, 8) for i in range(n)]


def _plate(path: Path, n: int = 48, seed: int = 1, mode: str = "create") -> Path:
    """``n`` 8 x 8 images, one an images row group (a plate's many row groups, small), its chunks read through their
    footers: its lists in a sidecar."""
    meta = {"well": [f"A{i % 4:02d}" for i in range(n)]}
    opts: dict[str, Any] = {"dim_order": "CYX", "images_per_group": 1, "rows_per_group": 2, "progress": False}
    write_dataset(_pixels(seed, n), path, mode=mode, metadata=meta, **opts)
    return path


def _ours(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads((root / MANIFEST).read_text())["ome_arrow_core"]
    return out


def _side(root: Path) -> Path:
    return root / str(_ours(root)[LISTS_KEY]["file"])


def _read_all(root: Path) -> list[np.ndarray]:
    ds = OMEArrowDataset.scan(root)
    return [ds[i].to_numpy().reshape(8, 8) for i in range(len(ds))]


def _same(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    return len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))


def test_a_plate_keeps_its_lists_in_a_sidecar_and_reads_the_same(tmp_path: Path) -> None:
    small, large = _plate(tmp_path / "a.ome.parquet", 48), _plate(tmp_path / "b.ome.parquet", 96)
    for root, n in ((small, 48), (large, 96)):
        ours = _ours(root)
        assert not any(k in ours for k in (*LISTED_KEYS, "table_groups", "chunk_footers"))
        side = _side(root)
        assert side.name == f"_ome_arrow_groups.{ours[LISTS_KEY]['digest']}.json"
        assert side.stat().st_size == ours[LISTS_KEY]["size"]
        assert set(json.loads(side.read_text())) == set(LISTED_KEYS)
        assert ours[LISTS_KEY]["tables"]["images.parquet"]["rows"] == n
        assert _same(_read_all(root), [a[0] for a in _pixels(1, n)])
        assert len(OMEArrowDataset.scan(root).filter({"well": "A01"})) == n // 4
        assert verify(root).ok
    # twice the images, twice the row groups: the manifest's size is the same (a count's digits aside)
    assert abs((large / MANIFEST).stat().st_size - (small / MANIFEST).stat().st_size) <= 8
    assert _side(large).stat().st_size > 1.8 * _side(small).stat().st_size


def test_scan_and_len_never_open_the_sidecar(tmp_path: Path) -> None:
    """A FIFO in its place (an open of it would be refused): scan and len count from the manifest; the first read
    that needs the lists refuses it, naming it."""
    root = _plate(tmp_path / "p.ome.parquet")
    side = _side(root)
    side.unlink()
    os.mkfifo(side)
    ds = OMEArrowDataset.scan(root)
    assert len(ds) == 48
    with pytest.raises(StorageError, match=side.name):
        ds[3].to_numpy()


@pytest.mark.parametrize("table", ["index.parquet", "missing"])
def test_a_count_the_manifest_lacks_is_never_taken_from_the_sidecar(tmp_path: Path, table: str) -> None:
    """``group_lists.tables`` without a table's counts (one dropped, or all): ``recorded_rows`` says None without
    opening the sidecar (a FIFO here); the scan then counts by the footers, which it checks against the digests the
    sidecar holds: a FIFO there is refused naming it (never waited on), the real sidecar counts the same."""
    root = _plate(tmp_path / "p.ome.parquet")
    manifest = json.loads((root / MANIFEST).read_text())
    tables = manifest["ome_arrow_core"][LISTS_KEY]["tables"]
    for name in list(tables) if table == "missing" else [table]:
        del tables[name]
    (root / MANIFEST).write_text(json.dumps(manifest))
    side = _side(root)
    blob = side.read_bytes()
    side.unlink()
    os.mkfifo(side)
    assert recorded_rows(root, manifest, "index.parquet") is None
    with pytest.raises(StorageError, match=side.name):
        OMEArrowDataset.scan(root)
    side.unlink()
    side.write_bytes(blob)
    ds = OMEArrowDataset.scan(root)
    assert len(ds) == 48 and len(ds.filter({"well": "A02"})) == 12


@pytest.mark.parametrize("damage", ["missing", "truncated", "grown"])
def test_a_sidecar_of_another_size_is_not_used(tmp_path: Path, damage: str) -> None:
    """Missing, cut or grown (a write's kill, a copy cut short): the tables are hashed whole, as for a dataset written
    without the lists; the pixels and the count are the same; verify says what is wrong."""
    root = _plate(tmp_path / "p.ome.parquet")
    side = _side(root)
    if damage == "missing":
        side.unlink()
    elif damage == "truncated":
        side.write_bytes(side.read_bytes()[: side.stat().st_size // 2])
    else:
        side.write_bytes(side.read_bytes() + b" ")
    assert _same(_read_all(root), [a[0] for a in _pixels(1, 48)])
    assert len(OMEArrowDataset.scan(root).filter({"well": "A02"})) == 12
    report = verify(root)
    assert not report.ok and side.name in str(report)


@pytest.mark.parametrize("damage", ["flipped", "swapped"])
def test_a_sidecar_of_the_recorded_size_that_does_not_match_is_refused(tmp_path: Path, damage: str) -> None:
    root = _plate(tmp_path / "p.ome.parquet")
    side = _side(root)
    if damage == "flipped":
        data = bytearray(side.read_bytes())
        data[len(data) // 2] ^= 0x04
        side.write_bytes(bytes(data))
    else:  # the sidecar of a plate of the same shapes and other pixels, under this one's name
        twin = _plate(tmp_path / "twin.ome.parquet", seed=2)
        assert _side(twin).stat().st_size == side.stat().st_size
        shutil.copyfile(_side(twin), side)
    ds = OMEArrowDataset.scan(root)
    assert len(ds) == 48  # counted from the manifest
    with pytest.raises(ChecksumError, match=side.name):
        ds[5].to_numpy()
    report = verify(root)
    assert not report.ok and side.name in str(report)


def test_a_manifest_count_that_disagrees_with_its_sidecar_is_refused(tmp_path: Path) -> None:
    """The manifest's ``group_lists.tables`` (what scan counts by) lies about the rows: the first read refuses it."""
    root = _plate(tmp_path / "p.ome.parquet")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["ome_arrow_core"][LISTS_KEY]["tables"]["index.parquet"]["groups"] += 1
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match="group_lists"):
        OMEArrowDataset.scan(root)[0].to_numpy()


@pytest.mark.parametrize("lie", [True, False])
def test_a_manifest_count_is_checked_against_the_footer_when_the_sidecar_is_missing(tmp_path: Path, lie: bool) -> None:
    """Sidecar gone (the tables hashed whole): the rows ``group_lists.tables`` says (what scan counted by) are
    compared with the table's footer at the first read; a lie (the image count told to match) is refused."""
    root = _plate(tmp_path / "p.ome.parquet")
    manifest = json.loads((root / MANIFEST).read_text())
    if lie:
        for name in ("images.parquet", "index.parquet"):  # consistent: the scan counts 49 by them
            manifest["ome_arrow_core"][LISTS_KEY]["tables"][name]["rows"] += 1
        manifest["image_count"] += 1
    (root / MANIFEST).write_text(json.dumps(manifest))
    _side(root).unlink()
    if not lie:
        assert len(OMEArrowDataset.scan(root)) == 48 and _same(_read_all(root), [a[0] for a in _pixels(1, 48)])
        return
    with pytest.raises(DamagedFileError, match=r"records 49 rows .*'images.parquet'.*its footer 48"):
        OMEArrowDataset.scan(root)[0].to_numpy()


def test_a_malformed_sidecar_the_manifest_vouches_for_is_refused(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p.ome.parquet")
    side = _side(root)
    blob = b'{"table_groups_packed": [1, 2]}'
    side.write_bytes(blob)
    manifest = json.loads((root / MANIFEST).read_text())
    import xxhash

    manifest["ome_arrow_core"][LISTS_KEY].update(size=len(blob), digest=xxhash.xxh3_64_hexdigest(blob))
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match=side.name):
        OMEArrowDataset.scan(root)[0].to_numpy()


def test_verify_reads_the_sidecar_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify checks the sidecar's bytes once per manifest it reads (each verify anew: damage after an earlier
    verify is found)."""
    from ome_arrow_core.typed_chunk import group_lists

    root = _plate(tmp_path / "p.ome.parquet")
    side = _side(root)
    opened: list[str] = []
    real = group_lists.open_regular

    def counted(at: Path, name: str) -> int:
        opened.append(name)
        return real(at, name)

    monkeypatch.setattr(group_lists, "open_regular", counted)
    assert verify(root).ok
    # once for verify's manifest (its tables' check, the damage check, the footer records), once for the audit's
    assert opened == [side.name, side.name]
    data = bytearray(side.read_bytes())
    data[len(data) // 2] ^= 0x04
    side.write_bytes(bytes(data))
    report = verify(root)
    assert not report.ok and side.name in str(report)


def test_lists_moved_back_into_the_manifest_read_as_before(tmp_path: Path) -> None:
    """A manifest holding the lists itself (every write before the sidecar) reads the same."""
    root = _plate(tmp_path / "p.ome.parquet")
    side = _side(root)
    manifest = json.loads((root / MANIFEST).read_text())
    ours = manifest["ome_arrow_core"]
    ours.update(json.loads(side.read_text()))
    del ours[LISTS_KEY]
    (root / MANIFEST).write_text(json.dumps(manifest))
    side.unlink()
    assert _same(_read_all(root), [a[0] for a in _pixels(1, 48)])
    assert verify(root).ok


def test_checks_off_read_without_the_sidecar(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p.ome.parquet")
    data = bytearray(_side(root).read_bytes())
    data[10] ^= 0x01
    _side(root).write_bytes(bytes(data))
    ds = OMEArrowDataset.scan(root, verify=False)
    assert np.array_equal(ds[7].to_numpy().reshape(8, 8), _pixels(1, 48)[7][0])


def test_an_append_and_a_compaction_replace_the_sidecar(tmp_path: Path) -> None:
    root = _plate(tmp_path / "p.ome.parquet")
    first = _side(root)
    _plate(root, 8, seed=3, mode="append")
    second = _side(root)
    assert second != first and not first.exists()  # the replaced manifest's file is removed after the commit
    want = [a[0] for a in [*_pixels(1, 48), *_pixels(3, 8)]]
    assert _same(_read_all(root), want)
    assert set(_ours(root)[LISTS_KEY]["tables"]) == {"images.parquet", "index.parquet", *_appended()}
    compact_dataset(root)
    third = _side(root)
    assert third != second and not second.exists()
    assert set(_ours(root)[LISTS_KEY]["tables"]) == {"images.parquet", "index.parquet"}
    assert [p.name for p in root.glob("_ome_arrow_groups.*")] == [third.name]
    assert _same(_read_all(root), want)
    assert len(OMEArrowDataset.scan(root).filter({"well": "A03"})) == 14
    assert verify(root).ok


def _appended() -> set[str]:
    return {"images-00001.parquet", "index-00001.parquet"}


def test_an_append_to_a_plate_whose_sidecar_is_damaged_is_refused_and_one_without_it_measures_anew(
    tmp_path: Path,
) -> None:
    root = _plate(tmp_path / "p.ome.parquet")
    side = _side(root)
    good = side.read_bytes()
    data = bytearray(good)
    data[-3] ^= 0x10
    side.write_bytes(bytes(data))
    manifest = (root / MANIFEST).read_bytes()
    with pytest.raises(ChecksumError, match=side.name):  # the append checks the tables it appends to
        _plate(root, 4, seed=3, mode="append")
    assert (root / MANIFEST).read_bytes() == manifest
    side.unlink()  # missing: the tables hashed whole, the lists measured from them again
    _plate(root, 4, seed=3, mode="append")
    assert _side(root) != side and _side(root).is_file()
    assert _same(_read_all(root), [a[0] for a in [*_pixels(1, 48), *_pixels(3, 4)]])
    assert verify(root).ok


@pytest.mark.parametrize("after", [False, True], ids=["before-step", "after-step"])
def test_an_append_interrupted_at_every_step_reads_old_or_new(tmp_path: Path, after: bool) -> None:
    """KeyboardInterrupt just before (or after) each file-system step of an append that writes a new sidecar and
    removes the old one: the plate reads as before or after it, and cleanup and the next append leave it readable."""
    from test_write_faults import _Interrupt

    template = _plate(tmp_path / "template.ome.parquet")
    old = [a[0] for a in _pixels(1, 48)]
    new = old + [a[0] for a in _pixels(3, 3)]
    k = 0
    while True:
        k += 1
        root = tmp_path / f"k{k}" / "p.ome.parquet"
        shutil.copytree(template, root)
        with _Interrupt(k, after) as hit:
            try:
                _plate(root, 3, seed=3, mode="append")
            except KeyboardInterrupt:
                pass
        got = _read_all(root)
        assert _same(got, old) or _same(got, new), f"step {k}: neither the old nor the new plate"
        cleanup_dataset(root)
        _plate(root, 2, seed=4, mode="append")
        assert _same(_read_all(root), got + [a[0] for a in _pixels(4, 2)]), f"step {k}"
        assert len(list(root.glob("_ome_arrow_groups.*"))) >= 1
        shutil.rmtree(root.parent)
        if not hit.fired:
            break
    assert k > 3  # the append's files, its sidecar, its manifest, the old sidecar's removal
