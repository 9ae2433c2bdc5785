"""Table 12: live streams on several stylizing workers (``livestyle-serve --engine ray``, service/http/cluster.py).

- **Spread and frame rate**: the same load (``peers`` aiortc peers sending a moving gradient at 15 fps) on 1, 2
  and 3 workers of one Ray Serve deployment on this machine: peers served, frames received per second per
  peer, and how many peers the busiest worker holds against ceil(P / R) + 1.
- **A worker dies**: with 3 workers, the one holding the first peer is killed; the other peers' frame rate
  before and after (goal: no drop past 10%) and how many streams ended (only its own).
- **Routing overhead**: the time an offer takes to be answered through the ingress and its router, against a
  single ``livestyle-serve`` process, median of ``offers`` offers each.

The workers share this machine's cores, so the total does not grow with R here: the point is that nothing is
lost and routing is even. Ray and the clients run in this process; the single process is a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import statistics
import time
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from examples.client import ClientError, StyleClient
from service.live.signalling import loopback_host_addresses
from service.settings import ClusterSettings, JobSettings, Settings, StyleSettings
from training.bench.reliability import Camera, Counter, free_port, rates, server
from training.bench.report import Table

log = logging.getLogger(__name__)
SPREAD_GOAL_EXTRA = 1  # no worker above ceil(P / R) + 1
DEATH_GOAL = 0.9  # the survivors keep >= 0.9x their frame rate
OVERHEAD_GOAL_MS = 50.0


@dataclass(frozen=True)
class ClusterPlan:
    models_dir: Path
    peers: int = 6
    replicas: tuple[int, ...] = (1, 2, 3)
    max_peers: int = 4  # per worker
    seconds: float = 6.0
    offers: int = 8
    size: tuple[int, int] = (320, 240)


@dataclass
class Spread:
    replicas: int
    served: int
    refused: int
    fps: list[float]
    busiest: int


@dataclass
class ClusterResult:
    spread: list[Spread] = field(default_factory=list)
    before: list[float] = field(default_factory=list)  # the survivors, before a worker is killed
    after: list[float] = field(default_factory=list)
    ended: int = 0  # streams that stopped when it died
    expected_ended: int = 0  # the dead worker's own peers
    offer_ms_single: float = float("nan")
    offer_ms_ingress: float = float("nan")
    replica_cpus: float = float("nan")  # what the server's fit to this machine reserved per worker


@contextlib.contextmanager
def deployment(plan: ClusterPlan) -> Iterator[tuple[str, Any, float]]:
    """A local Ray with Serve on a free port; yields its URL, ``deploy(replicas)`` and the CPUs per worker."""
    import ray
    from ray import serve

    from service.http import cluster

    port = free_port()
    settings = Settings.model_validate(
        {
            "models_dir": plan.models_dir,
            "ice_loopback": True,
            "dream": False,
            "max_peers": plan.max_peers,
            "host": "127.0.0.1",
            "port": port,
        }
    )
    jobs, styles = JobSettings.model_validate({}), StyleSettings.model_validate({"photos": None})
    ray.init(include_dashboard=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"

    # The CPU reservation `livestyle-serve` would choose for the most workers measured, kept for every count:
    # Serve can then replace the workers without waiting for CPUs the old ones still hold.
    most = ClusterSettings.model_validate({"replicas": max(plan.replicas)})
    cpus = cluster.fit_to_cluster(most, ray.cluster_resources())[0].replica_cpus
    assert cpus is not None  # a fitted reservation is always set

    def deploy(replicas: int) -> None:
        options = ClusterSettings.model_validate(
            {"replicas": replicas, "replica_cpus": cpus, "drain_seconds": 5.0, "stats_period": 0.3}
        )
        serve.run(cluster.application(settings, jobs, styles, options), name=cluster.APP_NAME, route_prefix="/")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            workers = httpx.get(f"{url}/api/health", timeout=10).json().get("workers", [])
            if len(workers) == replicas and all(w["max_peers"] and not w["draining"] for w in workers):
                return
            time.sleep(0.3)
        raise RuntimeError(f"{replicas} workers did not come up")

    try:
        yield url, deploy, cpus
    finally:
        serve.shutdown()
        ray.shutdown()


async def connect(url: str, count: int, size: tuple[int, int]) -> tuple[list[StyleClient], list[Counter], int]:
    clients, counters, refused = [], [], 0
    for _ in range(count):
        client, counter = StyleClient(url), Counter()
        try:
            counter.start(await client.connect(Camera(*size)))
        except ClientError:
            refused += 1
            await client.close()
            continue
        clients.append(client)
        counters.append(counter)
    deadline = time.monotonic() + 20
    while any(c.frames == 0 for c in counters) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return clients, counters, refused


async def spread(url: str, plan: ClusterPlan, replicas: int, result: ClusterResult, kill: bool) -> None:
    import ray

    clients, counters, refused = await connect(url, plan.peers, plan.size)
    try:
        await asyncio.sleep(2.0)  # settle: encoders, adaptive resolution
        fps = await rates(counters, plan.seconds)
        busiest = max(Tally(c.replica for c in clients).values(), default=0)
        result.spread.append(Spread(replicas, len(clients), refused, fps, busiest))
        if not kill:
            return
        victim = clients[0].replica
        mine = [c.replica == victim for c in clients]
        name = next(a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].endswith(f"#{victim}"))
        ray.kill(ray.get_actor(name["name"], namespace=name["namespace"]), no_restart=True)
        await asyncio.sleep(3.0)
        after = await rates(counters, plan.seconds)
        result.before = [r for r, m in zip(fps, mine, strict=True) if not m]
        result.after = [r for r, m in zip(after, mine, strict=True) if not m]
        result.ended, result.expected_ended = sum(1 for r in after if r == 0.0), sum(mine)
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def offer_ms(url: str, plan: ClusterPlan) -> float:
    """Median time from POST /api/offer to its answer, over ``plan.offers`` full connections made one by one."""
    times = []
    for _ in range(plan.offers):
        client = StyleClient(url)
        try:
            await client.connect(Camera(*plan.size))
            times.append(client.offer_seconds * 1000)
        finally:
            await client.close()
        await asyncio.sleep(0.3)
    return statistics.median(times)


def measure_cluster(plan: ClusterPlan) -> ClusterResult:
    result = ClusterResult()
    with loopback_host_addresses():
        with server(plan.models_dir, plan.max_peers) as (url, _):
            result.offer_ms_single = asyncio.run(offer_ms(url, plan))
        with deployment(plan) as (url, deploy, result.replica_cpus):
            for replicas in plan.replicas:
                deploy(replicas)
                if replicas == plan.replicas[0]:
                    result.offer_ms_ingress = asyncio.run(offer_ms(url, plan))
                asyncio.run(spread(url, plan, replicas, result, kill=replicas == plan.replicas[-1]))
                log.info("cluster: %d workers done", replicas)
    return result


def _spread_rows(plan: ClusterPlan, r: ClusterResult) -> tuple[list[list[str]], bool]:
    """One row per worker count: how the peers spread; and whether every spread met its limit."""
    rows = []
    spread_ok = True
    for s in r.spread:
        limit = math.ceil(s.served / s.replicas) + SPREAD_GOAL_EXTRA if s.served else 0
        spread_ok &= s.busiest <= limit
        rows.append(
            [
                f"{s.replicas} worker{'s' if s.replicas > 1 else ''}",
                f"{plan.peers} peers",
                f"{s.served} served, {s.refused} refused; {statistics.fmean(s.fps):.1f} fps per peer "
                f"(min {min(s.fps):.1f}); busiest worker {s.busiest} peers (limit {limit})"
                if s.fps
                else f"{s.served} served, {s.refused} refused",
            ]
        )
    return rows, spread_ok


def cluster_table(plan: ClusterPlan, r: ClusterResult, models: dict[str, str]) -> Table:
    rows, spread_ok = _spread_rows(plan, r)
    kept = statistics.fmean(r.after) / statistics.fmean(r.before) if r.before else float("nan")
    rows.append(
        [
            f"a worker of {plan.replicas[-1]} killed",
            f"{plan.peers} peers",
            f"{r.ended} streams ended (its own: {r.expected_ended}); the others {statistics.fmean(r.before):.1f}"
            f" -> {statistics.fmean(r.after):.1f} fps ({kept:.2f}x)"
            if r.before
            else "-",
        ]
    )
    extra = r.offer_ms_ingress - r.offer_ms_single
    rows.append(
        [
            "offer answered",
            f"median of {plan.offers}",
            f"single process {r.offer_ms_single:.0f} ms, through the ingress {r.offer_ms_ingress:.0f} ms "
            f"({extra:+.0f} ms)",
        ]
    )
    shas = ", ".join(f"{name} {sha[:12]}" for name, sha in models.items())
    return Table(
        title="12. Live streams on several workers (Ray Serve)",
        header=["what", "load", "result"],
        rows=rows,
        setup=(
            f"One Ray Serve deployment on this machine (`service/http/cluster.py`: the ingress and R "
            f"stylizing workers, "
            f"max_peers {plan.max_peers} each, {r.replica_cpus:g} CPU reserved by each as `livestyle-serve` fits "
            f"{max(plan.replicas)} workers to this machine), models {shas}; aiortc peers send a moving "
            f"{plan.size[0]}x{plan.size[1]} gradient at 15 fps; frame rates over {plan.seconds:g} s. The workers "
            "share the same 2 cores, so the total does not grow with R: what is measured is that nothing is lost "
            "and routing is even. `python -m training.bench --only cluster`."
        ),
        goal=(
            f"no worker holds more than ceil(P/R) + {SPREAD_GOAL_EXTRA}; a worker's death costs only its own peers "
            f"and the others keep >= {DEATH_GOAL}x their frame rate; an offer through the ingress costs <= "
            f"{OVERHEAD_GOAL_MS:g} ms more than against a single process."
        ),
        verdicts=[
            f"Spread: {'met' if spread_ok else 'missed'}.",
            f"A worker's death: {'met' if r.ended == r.expected_ended and kept >= DEATH_GOAL else 'missed'} "
            f"({r.ended} of {r.expected_ended} own streams ended, the others {kept:.2f}x).",
            f"Routing overhead: {'met' if extra <= OVERHEAD_GOAL_MS else 'missed'} ({extra:+.0f} ms).",
        ],
        notes=[
            "Per GPU: not measured here (no GPU was lent); table 6 gives a GPU's time per frame, and a worker "
            "holds as many peers as 1 / (frame time x frame rate) allows."
        ],
    )
