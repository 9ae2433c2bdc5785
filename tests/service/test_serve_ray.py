"""`livestyle-serve --engine ray` as a newcomer runs it: the workers fitted to the machine's CPUs (shared when
there are fewer CPUs than workers), a refusal in one line when asked for what the cluster lacks, and a local Ray
cluster that ends with the server on SIGTERM. Real Ray, the real CLI, loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("ray.serve", reason="Ray Serve is an optional extra (pip install 'livestyle[ray]')")

from conftest import free_port  # noqa: E402

from service.http import cluster  # noqa: E402
from service.settings import ClusterSettings

REPO = Path(__file__).resolve().parents[2]


def fit(available: dict[str, float], **asked: Any) -> tuple[ClusterSettings, str | None]:
    return cluster.fit_to_cluster(ClusterSettings(**asked), available)


def test_defaults_take_a_cpu_each_where_the_cluster_has_them() -> None:
    fitted, said = fit({"CPU": 4.0}, replicas=2)
    assert fitted.replica_cpus == 1.0 and said is None


def test_defaults_share_the_cpus_out_when_workers_outnumber_them() -> None:
    fitted, said = fit({"CPU": 2.0}, replicas=3)
    assert fitted.replica_cpus == 0.66 and fitted.replicas * fitted.replica_cpus <= 2.0
    assert said is not None and "3 workers share" in said and "0.66 CPU each" in said
    fitted, _ = fit({"CPU": 2.0}, replicas=2, max_replicas=5)  # autoscaling: room for the most workers
    assert fitted.replica_cpus == 0.4


def test_a_chosen_reservation_the_cluster_cannot_hold_is_refused_with_what_to_change() -> None:
    assert fit({"CPU": 2.0}, replicas=2, replica_cpus=1.0)[0].replica_cpus == 1.0  # it fits: as asked
    with pytest.raises(
        cluster.ClusterDoesNotFit,
        match=r"3 workers x 1 CPU need 3 CPUs .* has 2: give "
        r"--replica-cpus 0.66",
    ):
        fit({"CPU": 2.0}, replicas=3, replica_cpus=1.0)
    with pytest.raises(cluster.ClusterDoesNotFit, match=r"need 2 GPUs and the Ray cluster has 0"):
        fit({"CPU": 8.0}, replicas=2, replica_gpus=1.0)
    assert fit({"CPU": 8.0, "GPU": 1.0}, replicas=2, replica_gpus=0.5)[0].replica_gpus == 0.5


def serve_ray(models_dir: Path, port: int, *flags: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LIVESTYLE_MAX_PEERS": "2", "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from service.cli import main; main()",
            "--engine",
            "ray",
            "--models-dir",
            str(models_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--ice-loopback",
            *flags,
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Ray's GCS, raylet and workers of a cluster the server started)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_default_deployment_becomes_healthy_and_sigterm_ends_its_ray(models_dir: Path, tmp_path: Path) -> None:
    """`make serve-ray REPLICAS=3` with every other default: healthy on any machine (on one with fewer than 3 CPUs
    the workers share them, said in one log line), and SIGTERM stops the server and the Ray cluster it started."""
    port, log = free_port(), tmp_path / "serve.log"
    server = serve_ray(models_dir, port, "--replicas", "3", log=log)
    body: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                body = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).json()
                if len(body.get("workers", [])) == 3 and all(w["max_peers"] == 2 for w in body["workers"]):
                    break
            time.sleep(0.5)
        else:
            raise AssertionError(f"never healthy (health: {body}); log:\n{log.read_text()[-3000:]}")
        shared = "3 workers share" in log.read_text()
        assert shared == ((os.cpu_count() or 1) < 3), log.read_text()[-2000:]
        ray_processes = descendants(server.pid)
        assert ray_processes, "the server started no Ray processes"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()[-2000:]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in ray_processes):
            time.sleep(0.5)
        assert not any(alive(p) for p in ray_processes), "Ray outlived the server"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def test_asking_for_more_than_the_cluster_has_exits_in_one_line(models_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    server = serve_ray(models_dir, free_port(), "--replicas", "2", "--replica-cpus", "1000", log=log)
    try:
        assert server.wait(timeout=120) == 2
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    last = log.read_text().strip().splitlines()[-1]
    assert last.startswith("livestyle-serve: 2 workers x 1000 CPU need 2000 CPUs") and "--replica-cpus" in last
