"""Table checksums: the manifest records the XXH3-64 of every images and index table, checked before pyarrow parses it.

pyarrow aborts the process (``std::terminate``) on some damaged Parquet footers, so a damaged
table must be refused before pyarrow sees a byte of it. Every test here damages a table (or
lies in the recorded checksum) and asserts our error, naming dataset and member, and that no
pyarrow.parquet entry point was handed the damaged file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from ome_arrow_core import OMEArrowDataset, compact_dataset, parquet_lite, write_dataset
from ome_arrow_core.checksums import ENV
from ome_arrow_core.cli import main
from ome_arrow_core.errors import ChecksumError, DamagedFileError
from ome_arrow_core.typed_chunk import table_sums
from ome_arrow_core.typed_chunk.table_sums import check_tables, file_digest

MANIFEST = "_ome_arrow_dataset.json"
OPTS: dict[str, Any] = {"dim_order": "ZCYX", "chunk_shape": (8, 8), "progress": False}
#: pyarrow.parquet's (and parquet_lite's) entry points that parse a file's bytes.
ENTRY_POINTS = ("ParquetFile", "read_table", "read_metadata", "read_schema")


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 60000, (2, 2, 16, 16)).astype(np.uint16) for _ in range(n)]


def _appended(root: Path) -> tuple[Path, list[np.ndarray]]:
    arrs = _images(3)
    write_dataset(arrs[:2], root, metadata={"well": ["A1", "B1"]}, **OPTS)
    write_dataset(arrs[2:], root, mode="append", metadata={"well": ["C1"]}, **OPTS)
    return root, arrs


def _tables(root: Path) -> dict[str, list[str]]:
    recorded: dict[str, list[str]] = json.loads((root / MANIFEST).read_text())["ome_arrow_core"]["tables"]
    return recorded


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """The files handed to pyarrow.parquet's parsing entry points (the real functions still run)."""
    seen: list[Path] = []
    # the typed-chunk tables are opened through parquet_lite (pyarrow's reader without pyarrow.parquet); its other
    # names are pyarrow.parquet's, looked up there at each call
    for module in (pq, parquet_lite):
        for name in ENTRY_POINTS:
            if module is parquet_lite and name not in vars(parquet_lite):
                continue
            real = getattr(module, name)

            def spy(source: Any, *args: Any, _real: Callable[..., Any] = real, **kwargs: Any) -> Any:
                if isinstance(source, (str, Path)):
                    seen.append(Path(source).resolve())
                return _real(source, *args, **kwargs)

            monkeypatch.setattr(module, name, spy)
    yield seen


def _damage(file: Path, how: str) -> None:
    data = bytearray(file.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0x10
    elif how == "zero":
        data[-200:-8] = bytes(192)  # the footer
    elif how == "truncate":
        del data[len(data) * 2 // 3 :]
    file.write_bytes(bytes(data))


def _read_all(root: Path, **kw: Any) -> np.ndarray:
    return np.stack([OMEArrowDataset.scan(root, **kw)[i].to_numpy(layout="TZCYX") for i in range(3)])  # written ZCYX


@pytest.mark.parametrize("how", ["flip", "zero", "truncate"])
@pytest.mark.parametrize("member", ["images.parquet", "index.parquet", "images-00001.parquet", "index-00001.parquet"])
def test_a_damaged_table_is_refused_before_pyarrow_parses_it(
    tmp_path: Path, parsed: list[Path], member: str, how: str
) -> None:
    root, _ = _appended(tmp_path / "d.ome.parquet")
    _damage(root / member, how)
    parsed.clear()
    with pytest.raises(ChecksumError, match=rf"d.ome.parquet \[{member}\]: the table's bytes do not match") as err:
        _read_all(root)
    assert "was not parsed" in str(err.value)
    assert (root / member).resolve() not in parsed


def test_a_lie_in_the_recorded_checksum_is_refused(tmp_path: Path, parsed: list[Path]) -> None:
    root, arrs = _appended(tmp_path / "d.ome.parquet")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["ome_arrow_core"]["tables"]["index.parquet"] = ["0123456789abcdef"]
    (root / MANIFEST).write_text(json.dumps(manifest))
    parsed.clear()
    with pytest.raises(ChecksumError, match=r"\[index.parquet\]: .*recorded 0123456789abcdef, computed"):
        _read_all(root)
    assert (root / "index.parquet").resolve() not in parsed
    # the switch skips the check (the table is intact: its pixels are served)
    np.testing.assert_array_equal(_read_all(root, verify=False).squeeze(1), np.stack(arrs))


def test_the_environment_switch_skips_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, arrs = _appended(tmp_path / "d.ome.parquet")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["ome_arrow_core"]["tables"]["images.parquet"] = ["fedcba9876543210"]
    (root / MANIFEST).write_text(json.dumps(manifest))
    monkeypatch.setenv(ENV, "0")
    np.testing.assert_array_equal(_read_all(root).squeeze(1), np.stack(arrs))


def test_a_malformed_record_is_a_damaged_manifest(tmp_path: Path) -> None:
    root, _ = _appended(tmp_path / "d.ome.parquet")
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["ome_arrow_core"]["tables"] = {"images.parquet": "not a list"}
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DamagedFileError, match=r"\[_ome_arrow_dataset.json\]: ome_arrow_core.tables is"):
        OMEArrowDataset.scan(root)


def test_writes_appends_and_compaction_record_every_table(tmp_path: Path) -> None:
    root, arrs = _appended(tmp_path / "d.ome.parquet")
    assert set(_tables(root)) == {"images.parquet", "index.parquet", "images-00001.parquet", "index-00001.parquet"}
    for name, digests in _tables(root).items():
        assert digests == [file_digest(root / name)]
    compact_dataset(root)
    assert _tables(root) == {n: [file_digest(root / n)] for n in ("images.parquet", "index.parquet")}
    np.testing.assert_array_equal(_read_all(root).squeeze(1), np.stack(arrs))


def test_datasets_without_recorded_checksums_still_read(tmp_path: Path) -> None:
    root, arrs = _appended(tmp_path / "d.ome.parquet")
    manifest = json.loads((root / MANIFEST).read_text())
    del manifest["ome_arrow_core"]["tables"]  # as written before table checksums
    (root / MANIFEST).write_text(json.dumps(manifest))
    np.testing.assert_array_equal(_read_all(root).squeeze(1), np.stack(arrs))
    write_dataset(_images(1, seed=9), root, mode="append", **OPTS)  # an append records what it can
    assert len(_tables(root)) == 6 and len(OMEArrowDataset.scan(root)) == 4


def test_a_table_is_hashed_once_per_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = _appended(tmp_path / "d.ome.parquet")
    hashed: list[str] = []
    real = table_sums.file_digest

    def counting(file: Path, algorithm: str | None = None) -> str:
        hashed.append(Path(file).name)
        return real(file, algorithm)

    monkeypatch.setattr(table_sums, "file_digest", counting)
    monkeypatch.setattr(table_sums, "_passed", set())  # forget what the writes before checked
    manifest = json.loads((root / MANIFEST).read_text())
    check_tables(root, manifest, ["images.parquet", "index.parquet"])
    check_tables(root, manifest, ["images.parquet", "index.parquet"])
    assert sorted(hashed) == ["images.parquet", "index.parquet"]
    hashed.clear()
    data = (root / "index.parquet").read_bytes()
    (root / "index.parquet").write_bytes(data)  # a new file version (its mtime/ctime change): hashed again
    check_tables(root, manifest, ["images.parquet", "index.parquet"])
    assert hashed == ["index.parquet"]


def test_verify_reports_a_damaged_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = _appended(tmp_path / "d.ome.parquet")
    _damage(root / "index-00001.parquet", "zero")
    assert main(["verify", str(root)]) != 0
    out = capsys.readouterr()
    assert "index-00001.parquet" in out.out + out.err and "do not match" in out.out + out.err


def test_the_damage_that_aborted_pyarrow_is_refused_in_process(tmp_path: Path) -> None:
    """The harness case that aborted the process (pyarrow's "Definition level histogram size mismatch")."""
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        from corruption_harness import Case, run_case, build_samples
        work = Path({str(tmp_path)!r})
        samples = build_samples(work / "samples")
        out = run_case(Case("ds_vortex", "byteset", "index.parquet", "r4"), work / "case", samples)
        print(out.status, out.detail)
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.startswith("error"), child.stdout
