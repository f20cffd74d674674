"""The local Ray that ``read_dataset`` starts when none runs (ome_arrow_ray.local_ray), in fresh processes.

Each test runs a script in a process of its own, so that whether Ray is running, and with
which settings, is what the test sets up (the pytest process may hold another Ray). The
cluster's system config is read back from its GCS (what every raylet of it was started with).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("ome_arrow_ray")

from ome_arrow_core import write_dataset
from ome_arrow_ray.local_ray import FREE_OBJECTS_PERIOD_MS

N = 7
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray"),
    # The cluster's nodes are forked from this process; JAX, when an earlier test imported it, warns at every fork.
    pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning"),
]

#: Reads the plate with read_dataset (after the set-up in argv[3]) and prints what Ray it ran on.
SCRIPT = """
import json, sys
import numpy as np
import ray
from ome_arrow_ray import read_dataset
from ome_arrow_ray.local_ray import ensure_ray

path, expected, setup = sys.argv[1], np.load(sys.argv[2]), sys.argv[3]
if setup == "own":
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
if setup == "ensure-only":
    ensure_ray()
    print(json.dumps({"initialized": ray.is_initialized()}))
    sys.exit(0)
ray.data.DataContext.get_current().enable_progress_bars = False
rows = read_dataset(path, images_per_block=2, shuffle=True, seed=3).take_all()
labels = sorted(int(r["label"]) for r in rows)
equal = all(np.array_equal(r["image"], expected[int(r["label"])]) for r in rows)
config = ray._private.state.state.get_system_config()
nodes = len([n for n in ray.nodes() if n["Alive"]])
print(json.dumps({"labels": labels, "equal": equal, "config": config, "nodes": nodes}))
ray.shutdown()
"""


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("ray-local")
    arrs = np.random.default_rng(5).integers(0, 65535, (N, 2, 8, 12), dtype=np.uint16)
    out = write_dataset(
        list(arrs), where / "plate", dim_order="CYX", metadata={"label": list(range(N))}, progress=False
    )
    np.save(where / "expected.npy", arrs)
    return out, where / "expected.npy"


def _run(plate: tuple[Path, Path], setup: str, **env: str) -> dict[str, object]:
    environ = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_AUTO_CONNECT")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(plate[0]), str(plate[1]), setup],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def test_without_a_running_ray_read_dataset_starts_one_that_frees_blocks_sooner(plate: tuple[Path, Path]) -> None:
    got = _run(plate, "none")
    assert got["labels"] == list(range(N)) and got["equal"] is True
    assert got["config"]["free_objects_period_milliseconds"] == FREE_OBJECTS_PERIOD_MS  # type: ignore[index]


def test_a_ray_the_user_started_keeps_its_settings(plate: tuple[Path, Path]) -> None:
    got = _run(plate, "own")
    assert got["labels"] == list(range(N)) and got["equal"] is True
    assert "free_objects_period_milliseconds" not in got["config"]  # type: ignore[operator]


def test_no_ray_is_started_when_auto_connect_is_off(plate: tuple[Path, Path]) -> None:
    assert _run(plate, "ensure-only", RAY_ENABLE_AUTO_CONNECT="0") == {"initialized": False}
    assert _run(plate, "ensure-only") == {"initialized": True}


def test_with_ray_address_set_read_dataset_joins_that_cluster_unchanged(plate: tuple[Path, Path]) -> None:
    """Two nodes of ``ray.cluster_utils.Cluster``; the script finds them through RAY_ADDRESS, as Ray does."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        got = _run(plate, "none", RAY_ADDRESS=cluster.address)
    finally:
        cluster.shutdown()
    assert got["nodes"] == 2 and got["labels"] == list(range(N)) and got["equal"] is True
    assert "free_objects_period_milliseconds" not in got["config"]  # type: ignore[operator]
