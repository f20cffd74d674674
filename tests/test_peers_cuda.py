"""benchmarks/peers_cuda.py (issue 12's CUDA cases) and cuda_views.py where no CUDA device is visible: one skip line and exit 0;
``--cuda`` (it and compare_peers.py's) fails at once, naming why. ``CUDA_VISIBLE_DEVICES=""`` hides any GPU,
so these run alike on a machine with one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SKIP = "no CUDA device: CUDA cases skipped"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=BENCH, timeout=120)


def test_without_a_device_one_line_says_the_cases_were_skipped() -> None:
    out = run("peers_cuda.py")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    assert line.startswith(SKIP + " (") and line.endswith(")")  # and why: "cupy is not installed; torch ..."
    assert "CUDA cases on" not in out.stdout


def test_cuda_required_without_a_device_fails_naming_why() -> None:
    out = run("peers_cuda.py", "--cuda", "--repeats", "2")
    assert out.returncode == 2
    assert out.stdout == "" and out.stderr.startswith("--cuda: no CUDA device (")


@pytest.mark.parametrize(
    "args", [["--size", "300"], ["--z", "0"], ["--repeats", "0"], ["--tile", "512", "--size", "256"]]
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    out = run("peers_cuda.py", *args)
    assert out.returncode == 2 and "must be a multiple of --tile" in out.stderr


def test_cuda_views_without_a_device_skips_in_one_line_and_fails_when_required() -> None:
    out = run("cuda_views.py")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    assert line.startswith(SKIP + " (") and line.endswith(")")
    out = run("cuda_views.py", "--cuda", "--repeats", "2")
    assert out.returncode == 2
    assert out.stdout == "" and out.stderr.startswith("--cuda: no CUDA device (")
    out = run("cuda_views.py", "--z", "0")
    assert out.returncode == 2 and "must be at least 1" in out.stderr


def test_cuda_plane_steps_without_a_device_skips_in_one_line() -> None:
    out = run("cuda_plane_steps.py")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    assert line.startswith("no CUDA device: steps skipped (") and line.endswith(")")
    out = run("cuda_plane_steps.py", "--repeats", "0")
    assert out.returncode == 2 and "--repeats must be at least 1" in out.stderr


def test_compare_peers_cuda_required_without_a_device_fails_before_any_case() -> None:
    out = run("compare_peers.py", "--quick", "--cuda")
    assert out.returncode == 2 and "--cuda: no CUDA device (" in out.stderr
    assert "image 1x2x" not in out.stdout  # nothing was made or written


def test_compare_peers_auto_skips_the_cuda_cases_in_one_line() -> None:
    code = (
        "import argparse, sys; from pathlib import Path; import compare_peers as c\n"
        "for mode in ('auto', 'on'):\n"
        "    assert c.cuda_cases(argparse.Namespace(cuda=mode), Path('unused'), None) == []\n"
    )
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith(SKIP + " (") for line in lines)


def test_the_cases_are_timed_interleaved_in_shuffled_rounds() -> None:
    code = (
        "import json, cuda_cases\n"
        "log = []\n"
        "rows = cuda_cases.interleaved([lambda i=i: log.append(i) for i in range(5)], 4, seed=1)\n"
        "print(json.dumps({'log': log, 'rows': rows}))\n"
    )
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    rounds = [tuple(got["log"][k : k + 5]) for k in range(0, 20, 5)]
    assert len(got["log"]) == 20 and all(sorted(r) == list(range(5)) for r in rounds)  # each round: every case once
    assert len(set(rounds)) > 1  # in an order that changes
    for r in got["rows"]:
        assert r["repeats"] == 4 and r["min_ms"] <= r["median_ms"] <= r["max_ms"] and r["cpu_ms"] >= 0
