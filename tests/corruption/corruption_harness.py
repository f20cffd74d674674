"""Corruption harness: build one small file of every storage kind we write, mutate it, read it back.

Every mutant must read as exactly the original pixels or raise an :class:`OMEArrowError`
whose message names the file; any other exception, wrong pixels, a hang or unbounded memory
is a failure. Cases are deterministic (seeded by their id).

Kinds: Parquet datasets (lz4 and uncompressed chunks, Vortex chunks, an appended dataset), a
struct-record Parquet file, a single Vortex file, an OME-TIFF we write and one tifffile writes,
OME-Zarr stores we write (NGFF 0.5 zstd; 0.4 uncompressed) and one zarr-python writes, and Vortex files of
OME-Arrow records (ome-arrow 0.1.0's layout): ours (sealed), one the reference package writes (no checksum) and a
table of its records read by ``OMEArrowDataset.scan`` (corruption_vortex.py; the reference stores its pixels twice,
in chunks and planes, and a read refuses copies that differ).
Mutation classes: ``truncate``, ``bitflip``, ``byteset``, ``zero``, ``delete``, ``swap_twin``
(the same member of a dataset with the same shapes, other pixels), ``swap_other`` (of a
dataset with other shapes and dtype), ``lie`` (metadata edited to claim other sizes, dtypes,
ids, paths...), and ``fifo`` (a member replaced by a FIFO; run in a subprocess).

The samples are built by corruption_samples.py. The default run is a few hundred cases; ``OME_ARROW_CORE_FUZZ_CASES=5000`` makes more random
variants. Run it alone with ``python tests/corruption/corruption_harness.py [--cases N]``,
which prints the outcome counts per mutation class.
"""

from __future__ import annotations

import re
import shutil
import signal
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script too

from corruption_cases import KINDS, Case, cases, fifo_cases, mutate
from corruption_samples import build_samples

__all__ = [
    "RESULTS",
    "Case",
    "Outcome",
    "build_samples",
    "cases",
    "fifo_cases",
    "read_everything",
    "run_case",
    "summarize",
    "KINDS",
]

#: Outcomes of the cases run in this process (the pytest plugin in conftest.py prints their counts).
RESULTS: list[tuple[Case, Outcome]] = []
#: Seconds one case may take before it counts as a hang.
CASE_TIMEOUT = 20
#: Peak memory one case may add (traced Python/numpy allocations and resident set), beyond the file size.
MEMORY_BOUND = 64 << 20


# -- running one case -----------------------------------------------------------------------------
class Hang(Exception):
    """A case ran past CASE_TIMEOUT."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no result after {CASE_TIMEOUT} s")


def read_everything(kind: str, root: Path) -> list[np.ndarray]:
    """Scan ``root`` and read every image in every way a user would; the images' pixels (TZCYX), in order."""
    from ome_arrow_core import OMEArrow, OMEArrowDataset

    if kind == "record":  # one struct record (scan of one-row record files is issue 10's; read it directly)
        return [OMEArrow.scan(root).to_numpy(layout="TZCYX"), OMEArrow(root).to_numpy(layout="TZCYX")][:1]
    ds = OMEArrowDataset.scan(root)
    # a batch first (ds_planes: a fresh open audits the pages from their heads and reads whole chunks straight)
    first = ds.read(layout="TZCYX") if kind == "ds_planes" and len(ds) else None
    each = [ds[i].to_numpy(layout="TZCYX") for i in range(len(ds))]
    if kind.startswith("ds_") or kind == "vortex_rectable":
        batch = ds.read(layout="TZCYX") if len(ds) else np.zeros((0,))
        rows = [OMEArrow.scan(root, row=i).to_numpy(layout="TZCYX") for i in range(len(ds))]
        for i, img in enumerate(each):
            if not (np.array_equal(batch[i].reshape(img.shape), img) and np.array_equal(rows[i], img)):
                raise WrongPixels(f"image {i}: ds.read(), ds[i] and OMEArrow.scan(row=i) disagree")
            if first is not None and not np.array_equal(first[i].reshape(img.shape), img):
                raise WrongPixels(f"image {i}: the first ds.read() and ds[i] disagree")
        if (
            kind in ("ds_lz4", "ds_records", "vortex_rectable") and len(ds) == 3
        ):  # a filter (its value index) keeps image 1 alone
            kept = ds.filter({"well": "B02"})
            if len(kept) != 1 or not np.array_equal(kept[0].to_numpy(layout="TZCYX"), each[1]):
                raise WrongPixels(f"the filter well == 'B02' kept {len(kept)} images, not image 1")
    else:
        each.append(OMEArrow(root).to_numpy(layout="TZCYX"))
    return each


class WrongPixels(Exception):
    """The read returned pixels that are not the file's."""


@dataclass
class Outcome:
    """What one case did: ``status`` is "pixels" (exactly the original), "error" (ours, naming the file) or "failure"."""

    status: str
    detail: str = ""


def _hwm_kib() -> int:
    with open("/proc/self/status") as fh:
        m = re.search(r"VmHWM:\s+(\d+)", fh.read())
    return int(m.group(1)) if m else 0


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_case(
    case: Case, workdir: Path, samples: dict[tuple[str, str], tuple[Path, list[np.ndarray]]], cli: bool = True
) -> Outcome:
    """Copy the sample, mutate it, read everything under a timeout and memory watch; classify the outcome."""
    from ome_arrow_core import OMEArrowError

    src, expected = samples[(case.kind, "main")]
    root = workdir / src.name
    if root.exists() or root.is_symlink():
        shutil.rmtree(root) if root.is_dir() else root.unlink()
    if src.is_dir():
        shutil.copytree(src, root)
    else:
        shutil.copyfile(src, root)
    partners = {v: samples[(case.kind, v)][0] for v in ("twin", "other") if (case.kind, v) in samples}
    mutate(case, root, partners)
    _clear_caches()
    size = (
        sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        if root.is_dir()
        else (root.stat().st_size if root.is_file() else 0)
    )
    old = signal.signal(signal.SIGALRM, _alarm)
    import pyarrow as pa

    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    hwm_ok = _reset_hwm()
    base = _hwm_kib()
    signal.alarm(CASE_TIMEOUT)
    try:
        got = read_everything(case.kind, root)
        outcome = _compare(got, expected)
    except Hang as exc:
        outcome = Outcome("failure", f"hang: {exc}")
    except WrongPixels as exc:
        outcome = Outcome("failure", f"wrong pixels: {exc}")
    except OMEArrowError as exc:
        text = str(exc)
        if str(root) in text or root.name in text:
            outcome = Outcome("error", f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")
        else:
            outcome = Outcome("failure", f"{type(exc).__name__} does not name the file: {text[:300]}")
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome = Outcome("failure", f"foreign {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = (_hwm_kib() - base) * 1024 if hwm_ok else 0
        arrow = pa.total_allocated_bytes() - arrow_before  # still held by Arrow after the case
    bound = MEMORY_BOUND + 4 * size
    if peak > bound or rss > bound or arrow > bound:
        outcome = Outcome(
            "failure",
            f"memory: traced peak {peak >> 20} MiB, resident +{rss >> 20} MiB, "
            f"Arrow +{arrow >> 20} MiB, "
            f"bound {bound >> 20} MiB ({outcome.status}: {outcome.detail})",
        )
    _clear_caches()
    if cli:
        old = signal.signal(signal.SIGALRM, _alarm)
        try:
            one = None if case.kind.startswith("ds_") or case.kind == "vortex_rectable" else expected[0]
            problem = run_cli(root, workdir, outcome.status, one)
        finally:
            signal.signal(signal.SIGALRM, old)
        if problem is not None:
            outcome = Outcome("failure", f"cli {problem}" + (f" (read: {outcome.detail})" if outcome.detail else ""))
    return outcome


def run_cli(root: Path, workdir: Path, read_status: str, one: np.ndarray | None = None) -> str | None:
    """``ome-arrow-core info`` and ``convert`` on a mutant (in-process); a failure detail, or None.

    Each must exit 0, or exit 1 printing exactly one line on stderr that starts with
    ``error:`` and is no traceback; after a read error they must not exit 0 with nothing said.
    A single image (``one``, its pixels TZCYX) is also converted with ``--record`` (ome-arrow 0.1.0's one-record
    layout, a checksummed file): a record written must hold exactly the original pixels.
    """
    import contextlib
    import io

    from ome_arrow_core.cli import main

    out, record = workdir / "converted.ome.parquet", workdir / "converted.parquet"
    runs = [["info", str(root)], ["convert", str(root), "-o", str(out), "-q"]]
    if one is not None:
        runs.append(["convert", str(root), "-o", str(record), "--record", "-q"])
    for argv in runs:
        target = record if "--record" in argv else out
        err, std = io.StringIO(), io.StringIO()
        signal.alarm(CASE_TIMEOUT)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
                code = main(argv)
            if code == 0 and one is not None and target == record:
                from ome_arrow_core import OMEArrow

                got = OMEArrow.scan(record).to_numpy(layout="TZCYX")
                if got.dtype != one.dtype or not np.array_equal(got, one):
                    return f"convert --record: wrote {got.shape} {got.dtype} pixels, not the file's (exit 0)"
        except Hang:
            return f"{argv[0]}: hang"
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            return f"{argv[0]}: raised {type(exc).__name__}: {str(exc)[:200]}"
        finally:
            signal.alarm(0)
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            _clear_caches()
        lines = err.getvalue().splitlines()
        if code == 0 and not lines:
            continue
        if code != 1 or len(lines) != 1 or not lines[0].startswith("error: ") or "Traceback" in err.getvalue():
            return f"{argv[0]}: exit {code}, stderr {err.getvalue()[:300]!r}"
    return None


def _compare(got: list[np.ndarray], expected: list[np.ndarray]) -> Outcome:
    want = expected if len(got) == len(expected) else None
    if want is None and len(got) == len(expected) + 1:  # single files: the dataset view and the direct read
        want = [*expected, expected[0]]
    if want is None:
        return Outcome("failure", f"wrong pixels: {len(got)} images read, the file holds {len(expected)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape or g.dtype != w.dtype or not np.array_equal(g, w):
            return Outcome(
                "failure",
                f"wrong pixels: image {i} read as {g.shape} {g.dtype}, "
                f"stored {w.shape} {w.dtype}" + ("" if g.shape != w.shape else " (values differ)"),
            )
    return Outcome("pixels")


def _clear_caches() -> None:
    try:
        from ome_arrow_core.typed_chunk import opening

        opening.clear_cache()
    except (ImportError, AttributeError):
        pass


def summarize(results: Iterator[tuple[Case, Outcome]] | list[tuple[Case, Outcome]]) -> str:
    """A table: per mutation class, how many cases gave the pixels, our error, a failure."""
    counts: dict[str, Counter[str]] = {}
    for case, outcome in results:
        counts.setdefault(case.cls, Counter())[outcome.status] += 1
        counts.setdefault("all", Counter())[outcome.status] += 1
    lines = [f"{'class':<12} {'cases':>6} {'pixels':>7} {'error':>7} {'failure':>8}"]
    for cls in [*sorted(c for c in counts if c != "all"), "all"]:
        c = counts[cls]
        lines.append(f"{cls:<12} {sum(c.values()):>6} {c['pixels']:>7} {c['error']:>7} {c['failure']:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile
    import time
    import warnings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None, help="scale random variants to about this many cases")
    parser.add_argument("--kind", default=None, help="only this storage kind")
    parser.add_argument("--cls", default=None, help="only this mutation class")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every failure")
    args = parser.parse_args(argv)
    warnings.simplefilter("error")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        samples = build_samples(Path(tmp) / "samples")
        work = Path(tmp) / "work"
        work.mkdir()
        results = []
        for case in cases(args.cases):
            if (args.kind and case.kind != args.kind) or (args.cls and case.cls != args.cls):
                continue
            outcome = run_case(case, work, samples)
            results.append((case, outcome))
            if args.verbose and outcome.status == "failure":
                print(f"FAIL {case.id}: {outcome.detail}")
    print(summarize(results))
    print(f"{len(results)} cases in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
