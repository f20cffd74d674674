"""The table of compare_peers.py: cells (ms, CPU, configuration), ratios against peers, Markdown."""

from __future__ import annotations

from typing import Any

LIBS = ["ours", "tensorstore", "zarr", "tifffile", "raw pyarrow", "memcpy"]
PEERS = ["tensorstore", "zarr", "tifffile"]


def ms_text(v: float) -> str:
    """Milliseconds with three significant digits or so."""
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"


def cpu_text(r: Any) -> str:
    """`` cpu X`` : the process CPU time of a timed case (wall time far above it: the run waited for the CPU)."""
    return f" cpu {ms_text(r['cpu_ms'])}" if isinstance(r, dict) and "cpu_ms" in r else ""


def cell_text(r: Any) -> str:
    """One library's cell: wall ms (+ RSS growth) [its fastest configuration]; "-" when not measured."""
    if r is None:
        return "-"
    if isinstance(r, str):
        return r
    s = f"{ms_text(r['ms'])}" + (f" +{r['rss_mib']:.1f} MiB" if "rss_mib" in r else "")
    return s + (f" [{r['config']}]" if r.get("config") else "")


def ratio(results: dict[str, Any], among: list[str], key: str = "ms") -> tuple[float | None, str | None]:
    """ours / the fastest installed library of ``among`` by ``key`` (wall ``ms`` or ``cpu_ms``), and its name."""
    peers = [(r[key], lib) for lib, r in results.items() if lib in among and isinstance(r, dict) and key in r]
    if not peers or not isinstance(results.get("ours"), dict) or key not in results["ours"]:
        return None, None
    ms, lib = min(peers)
    return results["ours"][key] / ms, lib


RATIOS = {
    "ours / best peer": (PEERS, "ms"),
    "ours / best of tensorstore, zarr": (["tensorstore", "zarr"], "ms"),
    # process CPU time (all threads): what each read costs; on a shared machine a multi-threaded peer's wall time
    # gains from holding more runnable threads, and a long single-threaded read loses (it waits for a CPU)
    "CPU time: ours / best of tensorstore, zarr": (["tensorstore", "zarr"], "cpu_ms"),
}


def rows_of(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Table cells, one list per case; stores each row's ratios in ``rows`` (for the JSON report)."""
    out = []
    for row in rows:
        cells = [row["case"], *(cell_text(row["results"].get(lib)) for lib in LIBS)]
        for label, (among, key) in RATIOS.items():
            r, peer = ratio(row["results"], among, key)
            row[label] = {"ratio": r, "peer": peer}
            cells.append(f"{r:.2f}x ({peer})" if r is not None else "-")
        out.append(cells)
    return out


def markdown(cells: list[list[str]]) -> str:
    """The table as Markdown (for docs/benchmarks.md)."""
    head = ["case (ms)", *LIBS, *RATIOS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
