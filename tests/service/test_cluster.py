"""Live streams on Ray Serve (service/http/cluster.py): offers spread by free slots, a dead worker costs only its
own peers, a scale-down drains, control messages work through the ingress. Real Ray, real aiortc, loopback."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

ray = pytest.importorskip("ray", reason="Ray Serve is an optional extra (pip install 'livestyle[ray]')")
serve = pytest.importorskip("ray.serve")

from chromium import CHROMIUM  # noqa: E402
from conftest import FAST, STYLES, free_port  # noqa: E402
from ray.serve._private.common import DeploymentID  # noqa: E402
from ray.serve.request_router import ReplicaID  # noqa: E402
from whip_clients import AUTH, Publisher, Viewer  # noqa: E402

from examples.client import StyleClient  # noqa: E402
from service.http import cluster, ray_router  # noqa: E402
from service.live.signalling import loopback_host_addresses  # noqa: E402
from service.settings import ClusterSettings, JobSettings, Settings, StyleSettings  # noqa: E402
from training.bench.browser import FLAGS, loopback_only  # noqa: E402
from training.bench.reliability import Camera, Counter, rates  # noqa: E402

PER_WORKER = 3


def replica(rid: str, peers: int, max_peers: int = PER_WORKER, offers: int = 0, draining: bool = False) -> Any:
    stats = {"peers": peers, "max_peers": max_peers, "offers": offers, "draining": draining}
    return SimpleNamespace(
        replica_id=ReplicaID(rid, DeploymentID(name=cluster.WORKER, app_name=cluster.APP_NAME)), routing_stats=stats
    )


def router() -> ray_router.FreeSlotRouter:
    made = ray_router.FreeSlotRouter.__new__(ray_router.FreeSlotRouter)  # its Serve plumbing is not needed here
    made.initialize_state()
    return made


def ranked(r: ray_router.FreeSlotRouter, replicas: list[Any]) -> list[str]:
    ranks = asyncio.run(r.choose_replicas(replicas))
    assert all(len(rank) == 1 for rank in ranks)
    return [rank[0].replica_id.unique_id for rank in ranks]


def test_router_ranks_by_free_slots_and_counts_offers_not_yet_reported() -> None:
    r = router()
    a, b, c = replica("a", 2), replica("b", 0), replica("c", 1)
    assert ranked(r, [a, b, c]) == ["b", "c", "a"]
    offer = SimpleNamespace(metadata=SimpleNamespace(call_method="open"))
    for _ in range(2):  # two offers sent to b before b reports again: b now looks as full as a
        r.on_request_routed(offer, b.replica_id, None)  # type: ignore[arg-type]
    assert ranked(r, [a, b, c])[0] == "c"
    b.routing_stats.update(peers=2, offers=2)  # b's report: it has seen both
    assert ranked(r, [a, b, c]) == ["c", "a", "b"]
    assert ranked(r, [replica("d", 0, draining=True), replica("e", 2)]) == ["e", "d"]  # draining: no room


def test_a_call_on_a_session_goes_to_its_worker_and_a_publish_counts_as_an_offer() -> None:
    r = router()
    a, b = replica("a", 0), replica("b", 1)

    def call(*args: Any, **kwargs: Any) -> Any:
        return SimpleNamespace(args=list(args), kwargs=kwargs, metadata=SimpleNamespace(call_method="session_call"))

    assert asyncio.run(r.choose_replicas([a, b], call("watch", {}, replica="b"))) == [[b]]  # the session's worker
    assert asyncio.run(r.choose_replicas([a, b], call("end", {}, replica="gone"))) == [[a]]  # any: it answers 404
    assert asyncio.run(r.choose_replicas([a, b], call("publish", {}, replica=None))) == [[a], [b]]  # by free slots
    r.on_request_routed(call("publish", {}), a.replica_id, None)  # type: ignore[arg-type]
    r.on_request_routed(call("watch", {}, replica="a"), a.replica_id, None)  # type: ignore[arg-type]
    assert ranked(r, [a, b]) == ["a", "b"]  # a publish in flight on a: as much room as b; the watch takes none
    r.on_request_routed(call("publish", {}), a.replica_id, None)  # type: ignore[arg-type]
    assert ranked(r, [a, b]) == ["b", "a"]


def test_autoscaling_policy_wants_a_worker_per_target_peers_within_the_bounds() -> None:
    policy = cluster.PeersPolicy(target=2.0)

    def wanted(peers: list[float], low: int = 1, high: int = 4) -> int:
        ctx = SimpleNamespace(
            aggregated_metrics={"peers": dict(enumerate(peers))},
            capacity_adjusted_min_replicas=low,
            capacity_adjusted_max_replicas=high,
            policy_state={},
        )
        return policy(ctx)[0]  # type: ignore[arg-type]

    assert wanted([2, 2, 1]) == 3 and wanted([2, 2]) == 2 and wanted([2.0, 0.5]) == 2
    assert wanted([4, 4, 4]) == 4 and wanted([0, 0]) == 1 and wanted([]) == 1 and wanted([0], low=2) == 2


@pytest.fixture(scope="module")
def deployment(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """Three stylizing workers (tiny models, loopback ICE) behind the ingress, on a local Ray."""
    port = free_port()
    settings = Settings(
        models_dir=models_dir,
        ice_loopback=True,
        max_peers=PER_WORKER,
        dream=False,
        host="127.0.0.1",
        port=port,
        idle_timeout=3.0,
        ease_frames=1,
        max_frame_side=160,
    )
    jobs = JobSettings.model_validate({"work_dir": tmp_path_factory.mktemp("jobs")})
    styles = StyleSettings.model_validate({"dir": tmp_path_factory.mktemp("styles"), "photos": None})
    options = ClusterSettings(replicas=3, replica_cpus=0.0, drain_seconds=40.0, stats_period=0.3)
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    def deploy(replicas: int, **scaling: Any) -> None:
        chosen = options.model_copy(update={"replicas": replicas, **scaling})
        serve.run(cluster.application(settings, jobs, styles, chosen), name=cluster.APP_NAME, route_prefix="/")

    deploy(3)
    url = f"http://127.0.0.1:{port}"
    state = SimpleNamespace(url=url, deploy=deploy)
    try:
        wait_for_workers(url, 3)
        with loopback_host_addresses():
            yield state
    finally:
        serve.shutdown()
        ray.shutdown()


def health(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/api/health", timeout=10).json()


def wait_for_workers(url: str, count: int, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            body = health(url)
            workers = body.get("workers", [])  # each has reported (max_peers) and none drains
            if len(workers) == count and all(w["max_peers"] and not w["draining"] for w in workers):
                return body
        time.sleep(0.3)
    raise AssertionError(f"expected {count} workers; health says {body}")


@contextlib.asynccontextmanager
async def peers(url: str, count: int) -> AsyncIterator[list[tuple[StyleClient, Counter]]]:
    opened: list[tuple[StyleClient, Counter]] = []
    try:
        for _ in range(count):
            client, counter = StyleClient(url), Counter()
            opened.append((client, counter))
            counter.start(await client.connect(Camera(160, 120), model=FAST))
        await until(lambda: all(c.frames > 0 for _, c in opened), 20, "every peer streams")
        yield opened
    finally:
        await asyncio.gather(*(client.close() for client, _ in opened))


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


def kill_worker(replica_id: str) -> None:
    names = [a for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].endswith(f"#{replica_id}")]
    assert len(names) == 1, names
    ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]), no_restart=True)


def test_whip_and_whep_reach_the_worker_that_holds_the_session(deployment: SimpleNamespace) -> None:
    url = deployment.url

    async def scenario() -> None:
        publisher, viewer = Publisher(url), Viewer(url)
        try:
            published = await publisher.publish("?weights=starry_night=1")
            assert published.status_code == 201, published.text
            worker, _, local = publisher.session.partition(".")
            assert worker in {w["id"] for w in health(url)["workers"]} and local
            watched = await viewer.watch(publisher.session)
            assert watched.status_code == 201, watched.text
            frame = await asyncio.wait_for((await asyncio.wait_for(viewer.track, 20)).recv(), 20)
            assert frame.width > 0  # media flows straight between the viewer and the session's worker
            async with httpx.AsyncClient(headers=AUTH, timeout=30) as http:
                [listed] = (await http.get(f"{url}/api/sessions")).json()
                assert listed["id"] == publisher.session and len(listed["viewers"]) == 1
                look = await http.patch(f"{url}{publisher.location}/look", json={"weights": {"the_scream": 1}})
                assert look.status_code == 200, look.text
                bad = await http.patch(f"{url}{publisher.location}/look", json={"weights": {"nope": 1}})
                assert bad.status_code in (400, 422) and "nope" in bad.text  # the worker's refusal, as it said it
                assert (await http.get(f"{url}/api/whip/{worker}.unknown")).status_code == 404
                assert (await http.get(f"{url}/api/whip/no-worker-named")).status_code == 404
                assert (await http.delete(url + viewer.location)).status_code == 200
                assert (await http.delete(url + publisher.location)).status_code == 200
                assert (await http.delete(url + publisher.location)).status_code == 404
                assert (await http.get(f"{url}/api/sessions")).json() == []
        finally:
            await publisher.pc.close()
            await viewer.pc.close()

    async def the_pages_own() -> None:  # a page's stream, shared: its answer names the session with its worker
        client, watcher = StyleClient(url), Viewer(url)
        try:
            await client.connect(Camera(160, 120), model=FAST)
            assert client.session == f"{client.replica}.{client.peer_id}"
            assert (await watcher.watch(client.session)).status_code == 201
            frame = await asyncio.wait_for((await asyncio.wait_for(watcher.track, 20)).recv(), 20)
            assert frame.width > 0
        finally:
            await watcher.pc.close()
            await client.close()

    asyncio.run(scenario())
    asyncio.run(the_pages_own())


def test_offers_spread_a_dead_worker_costs_only_its_peers(deployment: SimpleNamespace) -> None:
    async def scenario() -> None:
        # from an empty deployment: a worker still closing an earlier test's peers has less room, and rightly less
        await until(lambda: health(deployment.url)["peers"] == 0, 30, "every earlier peer is closed")
        async with peers(deployment.url, 6) as six:
            where = Tally(client.replica for client, _ in six)
            assert len(where) == 3 and set(where.values()) == {2}, where  # 2 per worker
            assert math.ceil(6 / 3) + 1 >= max(where.values())
            await until(lambda: health(deployment.url)["peers"] == 6, 10, "health counts every peer")
            body = health(deployment.url)
            assert body["max_peers"] == 3 * PER_WORKER and sorted(w["peers"] for w in body["workers"]) == [2, 2, 2]
            # control messages go straight to the worker, with the one-process replies
            client = six[0][0]
            assert (await client.send({"weights": {STYLES[0]: 0.3, STYLES[1]: 0.7}})).get("ok") is True
            assert "unknown style" in (await client.send({"weights": {"nope": 1}}))["error"]
            victim = six[0][0].replica
            assert victim is not None
            kill_worker(victim)
            await asyncio.sleep(3.0)
            after = await rates([c for _, c in six], 3.0)
            dead = [rate for (client, _), rate in zip(six, after, strict=True) if client.replica == victim]
            alive = [rate for (client, _), rate in zip(six, after, strict=True) if client.replica != victim]
            assert dead == [0.0, 0.0] and all(rate > 1.0 for rate in alive), (dead, alive)
            async with peers(deployment.url, 2) as two:
                assert all(client.replica != victim for client, _ in two)

    asyncio.run(scenario())


def test_workers_follow_the_peers_and_a_scale_down_drains(deployment: SimpleNamespace) -> None:
    """Autoscaling on peers (2 per worker wanted, 1 to 3 workers): up as peers come, and down as they leave,
    where the worker removed still streams to its peers until they end (it tells them it drains)."""
    deployment.deploy(1, max_replicas=3, peers_per_replica=2.0, upscale_delay=0.5, downscale_delay=2.0)
    wait_for_workers(deployment.url, 1)

    async def scenario() -> None:
        async with peers(deployment.url, 3) as first:
            assert len({client.replica for client, _ in first}) == 1
            await asyncio.to_thread(wait_for_workers, deployment.url, 2)  # 3 peers, 2 wanted per worker
            async with peers(deployment.url, 2) as second:
                await asyncio.to_thread(wait_for_workers, deployment.url, 3)
                async with peers(deployment.url, 1) as third:
                    everyone = first + second + third
                    assert len({client.replica for client, _ in everyone}) == 3
                    for client, _ in first[:2]:  # 4 peers left, every worker holding one: one worker must go
                        await client.close()
                    left = first[2:] + second + third
                    await until(lambda: any(client.draining for client, _ in left), 40, "a worker drains")
                    drained = {client.replica for client, _ in left if client.draining}
                    assert len(drained) == 1
                    now = await rates([c for _, c in left], 3.0)
                    assert all(rate > 1.0 for rate in now), now  # nobody cut, the drained worker's peers too
                    async with peers(deployment.url, 1) as late:
                        assert late[0][0].replica not in drained
                    for client, _ in left:
                        if client.draining:
                            await client.close()
                    body = await asyncio.to_thread(wait_for_workers, deployment.url, 2)
                    assert drained.isdisjoint(w["id"] for w in body["workers"])

    asyncio.run(scenario())


@pytest.mark.browser
def test_the_page_says_its_stream_ended_and_reconnects_to_a_live_worker(deployment: SimpleNamespace) -> None:
    """Headless Chromium: its worker is killed; the page says the stream ended and offers Reconnect, which
    lands on another worker and streams again."""
    if not CHROMIUM.exists() or not loopback_only():
        pytest.skip("needs /usr/bin/chromium in a loopback-only namespace (tests/service/run_browser_tests.sh)")
    sync_api = pytest.importorskip("playwright.sync_api")
    deployment.deploy(3)
    wait_for_workers(deployment.url, 3)

    def holder() -> str | None:
        return next((w["id"] for w in health(deployment.url)["workers"] if w["peers"]), None)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{deployment.url}/?paint=server")
            page.wait_for_selector(".card input[type=range]")
            page.click("#start")
            page.wait_for_function("window.livestyle.status === 'live'", timeout=30_000)
            deadline = time.monotonic() + 10
            while (first := holder()) is None and time.monotonic() < deadline:
                time.sleep(0.2)
            assert first is not None
            kill_worker(first)
            page.wait_for_function("document.getElementById('start').textContent === 'Reconnect'", timeout=20_000)
            assert page.evaluate("window.livestyle.status") == "error"
            assert "Reconnect" in page.inner_text("body")
            page.click("#start")
            page.wait_for_function("window.livestyle.status === 'live'", timeout=30_000)
            page.wait_for_function("document.getElementById('stylized').videoWidth > 0", timeout=20_000)
            deadline = time.monotonic() + 10
            while (second := holder()) in (None, first) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert second not in (None, first)
        finally:
            browser.close()


def test_the_router_is_passed_by_an_import_path_that_names_it() -> None:
    from ray._common.utils import import_module_and_attr

    _, found = import_module_and_attr(cluster.ROUTER)
    assert found is ray_router.FreeSlotRouter
