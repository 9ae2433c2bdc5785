"""Live streams past one process: stylizing workers as Ray Serve replicas behind one ingress.

``livestyle-serve --engine ray --replicas N`` runs the same FastAPI app as the single process (page, REST, jobs)
as the ingress deployment, and N :class:`LiveWorker` replicas that each hold a whole live stack (engine, peer
registry, aiortc media). An offer is routed by :class:`FreeSlotRouter`, a Ray Serve request router that ranks
replicas by the free peer slots each reports through ``record_routing_stats``; the chosen replica answers with
its own ICE candidates, so media and the ``control`` channel flow straight between the client and that worker.
Ray Serve does the rest: replica health checks and restarts, placement (``ray_actor_options``: CPUs, GPUs),
and scaling, driven here by :func:`peers_policy` on each replica's peer count (``record_autoscaling_stats``).
A replica being scaled down is drained: Serve stops routing to it and its ``__del__`` waits for its streams to
end (up to ``drain_seconds``) after telling each on its control channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from typing import Any, cast

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve import Application
from ray.serve.config import AutoscalingContext, RequestRouterConfig
from ray.serve.deployment import Deployment
from ray.serve.handle import DeploymentHandle

from service import errors
from service.engine import Engine
from service.http.app import create_app
from service.live.broadcast import HOST_CALLS, Broadcasts, SessionInfo
from service.live.signalling import OfferAnswer, OfferRequest, loopback_host_addresses, open_registry
from service.look import LookUpdate
from service.settings import ClusterSettings, JobSettings, Settings, StyleSettings

log = logging.getLogger(__name__)

APP_NAME = "livestyle"
WORKER = "LiveWorker"
# By import path, as Ray Serve's own example does: Serve imports it in the process that holds the handle (the
# ingress), where it writes what it hears into VIEW below.
ROUTER = "service.http.ray_router.FreeSlotRouter"
# Ray errors that mean the chosen worker is gone (its offer is tried on another one)
WORKER_GONE = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


class ClusterDoesNotFit(ValueError):
    """The workers ask more of a resource than the Ray cluster has; the message says what to change."""


def fit_to_cluster(options: ClusterSettings, available: dict[str, float]) -> tuple[ClusterSettings, str | None]:
    """The settings the cluster can place, and the one line that says how they were fitted (None: as asked).

    ``available``: ``ray.cluster_resources()``. The ingress reserves nothing; each of the most workers there can
    be (``max_replicas`` when autoscaling) asks ``replica_cpus`` and ``replica_gpus``. Left unset, a worker asks one
    CPU, and where the cluster has fewer CPUs than workers they share them out evenly: Ray only counts them, the
    operating system schedules the threads, so the workers run, each slower. A count the user chose is a promise
    the cluster cannot keep when it is short, so it is refused with what to change.
    """
    workers = options.most_workers
    cpus, gpus = float(available.get("CPU", 0.0)), float(available.get("GPU", 0.0))
    if workers * options.replica_gpus > gpus + 1e-9:
        raise ClusterDoesNotFit(
            f"{workers} workers x {options.replica_gpus:g} GPU need {workers * options.replica_gpus:g} GPUs and the "
            f"Ray cluster has {gpus:g}: give --replica-gpus {gpus / workers:.2f} (workers share a GPU), fewer "
            "--replicas, or join a cluster with GPUs (--address)"
        )
    if options.replica_cpus is not None:
        if workers * options.replica_cpus > cpus + 1e-9:
            raise ClusterDoesNotFit(
                f"{workers} workers x {options.replica_cpus:g} CPU need {workers * options.replica_cpus:g} CPUs "
                f"and the Ray cluster has {cpus:g}: give --replica-cpus {_share(cpus, workers):g} (workers share "
                "the CPUs), fewer --replicas, or leave --replica-cpus out to share them automatically"
            )
        return options, None
    if workers <= cpus:
        return options.model_copy(update={"replica_cpus": 1.0}), None
    share = _share(cpus, workers)
    return options.model_copy(update={"replica_cpus": share}), (
        f"{workers} workers share the Ray cluster's {cpus:g} CPUs ({share:g} CPU each): each runs slower than on "
        "a CPU of its own (--replica-cpus sets the share, fewer --replicas gives each a whole CPU)"
    )


def _share(cpus: float, workers: int) -> float:
    """An even share, rounded down to hundredths so the workers' sum never exceeds the cluster's CPUs."""
    return math.floor(100 * cpus / workers) / 100


def free_slots(stats: dict[str, Any]) -> int:
    """What a worker's routing stats say it can still take (0 while draining or before its first report)."""
    if not stats or stats.get("draining"):
        return 0
    return int(stats.get("max_peers", 0)) - int(stats.get("peers", 0))


# What the ingress's router last heard from each running worker: /api/health of the whole deployment.
VIEW: list[dict[str, Any]] = []


class PeersPolicy:
    """Ray Serve autoscaling on peers: workers wanted = ceil(peers streaming / ``target`` per worker). Serve
    applies the bounds and the up- and downscale delays around it (then the worker removed drains)."""

    def __init__(self, target: float) -> None:
        self.target = target

    def __call__(self, ctx: AutoscalingContext) -> tuple[int, dict[str, Any]]:
        peers = sum((ctx.aggregated_metrics or {}).get("peers", {}).values())
        wanted = math.ceil(peers / self.target - 1e-9)
        return max(ctx.capacity_adjusted_min_replicas, min(ctx.capacity_adjusted_max_replicas, wanted)), {}


class LiveWorker:
    """One stylizing worker: a whole live stack in a Ray Serve replica. Offers come through the ingress;
    the media then flows between the client and this process."""

    def __init__(self, settings: Settings, drain_seconds: float) -> None:
        self._stack = contextlib.ExitStack()
        if settings.ice_loopback:
            self._stack.enter_context(loopback_host_addresses())
        engine = Engine.load(settings.models_dir, settings.runtime_options(), settings.default_model)
        self.peers = open_registry(settings, engine, self._stack)
        self.peers.replica = serve.get_replica_context().replica_id.unique_id
        self.broadcasts = Broadcasts(self.peers)  # WHIP and WHEP on this worker's streams
        self.drain_seconds = drain_seconds

    async def open(self, offer: dict[str, Any], client: str) -> dict[str, Any]:
        """The answer, or ``{"error", "status", "retry_after"}`` for the ingress to raise as the same error."""
        try:
            return (await self.peers.open(OfferRequest.model_validate(offer), client)).model_dump()
        except errors.ServiceError as exc:
            return failure(exc)

    async def session_call(self, call: str, kwargs: dict[str, Any], replica: str | None = None) -> Any:
        """One of :data:`HOST_CALLS` on this worker's sessions, or a failure for the ingress to raise. ``replica``
        is the worker the caller wanted (the router's pin): another worker holds none of its sessions."""
        try:
            if call not in HOST_CALLS:
                raise errors.BadRequest(f"no broadcast call {call!r}")
            if replica is not None and replica != self.peers.replica:
                raise errors.NotFound("no such session: the worker that held it is gone")
            return await getattr(self.broadcasts, call)(**kwargs)
        except errors.ServiceError as exc:
            return failure(exc)

    async def record_routing_stats(self) -> dict[str, Any]:
        return {
            **self.peers.capacity(),
            "offers": self.peers.offers,
            "dream_unavailable": self.peers.dream_unavailable() or "",
        }

    async def record_autoscaling_stats(self) -> dict[str, float]:
        return {"peers": float(len(self.peers))}

    async def __del__(self) -> None:
        """Scaled down or shut down: no new peers; the open ones stream until they end or the drain ends."""
        await self.peers.drain(self.drain_seconds)
        self._stack.close()


SERVICE_ERRORS: dict[int, type[errors.ServiceError]] = {
    cls.status_code: cls
    for cls in (
        errors.BadRequest,
        errors.NotFound,
        errors.PayloadTooLarge,
        errors.Unprocessable,
        errors.ServiceBusy,
        errors.TooManyRequests,
        errors.FeatureUnavailable,
    )
}


def failure(exc: errors.ServiceError) -> dict[str, Any]:
    """A worker's refusal as plain data (Ray pickles it to the ingress): see :func:`raise_failure`."""
    return {"error": str(exc), "status": exc.status_code, "retry_after": exc.retry_after}


def raise_failure(reply: Any) -> None:
    """The ingress raises a worker's refusal as the same error (503 for a status it does not know)."""
    if isinstance(reply, dict) and "error" in reply and "status" in reply:
        cls = SERVICE_ERRORS.get(int(reply["status"]), errors.ServiceBusy)
        raise cls(str(reply["error"]), retry_after=reply.get("retry_after"))


class RemotePeers:
    """The ingress's side (a :class:`service.live.signalling.LivePeers`): offers to the workers, capacity from
    what they report."""

    def __init__(self, workers: DeploymentHandle) -> None:
        self.workers = workers
        self.broadcasts = RemoteBroadcasts(workers)

    async def open(self, offer: OfferRequest, client: str = "") -> OfferAnswer:
        for attempt in range(3):  # a worker that died after it was chosen: the offer goes to another
            try:
                reply = await self.workers.open.remote(offer.model_dump(), client)
                break
            except WORKER_GONE as exc:
                log.warning("offer: worker gone (%s); trying another", type(exc).__name__)
                await asyncio.sleep(0.2 * (attempt + 1))
        else:
            raise errors.ServiceBusy("no stylizing worker answered; try again shortly", retry_after=2)
        raise_failure(reply)
        answer = OfferAnswer.model_validate(reply)
        if answer.session is not None:  # a page's stream is watched through the ingress, pinned to its worker
            answer.session = f"{answer.replica}.{answer.session}"
        return answer

    def capacity(self) -> dict[str, Any]:
        workers = [
            {
                "id": w["id"],
                "peers": int(w.get("peers", 0)),
                "max_peers": int(w.get("max_peers", 0)),
                "draining": bool(w.get("draining", False)),
            }
            for w in VIEW
        ]
        return {
            "peers": sum(w["peers"] for w in workers),
            "max_peers": sum(w["max_peers"] for w in workers if not w["draining"]),
            "free": sum(free_slots(w) for w in workers),
            "workers": workers,
        }

    def dream_unavailable(self) -> str | None:
        reasons = [str(w.get("dream_unavailable", "")) for w in VIEW]
        if not reasons:
            return "no stylizing worker has reported yet"
        return reasons[0] or None

    async def close_all(self) -> None:
        return None  # the streams belong to the workers

    async def start(self) -> None:
        """One call through the router, so it hears the workers' reports before the first offer."""
        with contextlib.suppress(*WORKER_GONE):
            await self.workers.record_routing_stats.remote()


class RemoteBroadcasts:
    """The ingress's WHIP and WHEP (a :class:`service.live.broadcast.BroadcastHost`): a publisher goes where the
    most slots are free, and every later call on its session to the worker that holds it, named by the session
    id the ingress hands out: ``{worker}.{session on that worker}``."""

    def __init__(self, workers: DeploymentHandle) -> None:
        self.workers = workers

    async def _call(self, call: str, replica: str | None, **kwargs: Any) -> Any:
        try:
            reply = await self.workers.session_call.remote(call, kwargs, replica=replica)
        except WORKER_GONE as exc:
            if replica is None:
                raise errors.ServiceBusy("no stylizing worker answered; try again shortly", retry_after=2) from exc
            raise errors.NotFound("no such session: the worker that held it is gone") from exc
        raise_failure(reply)
        return reply

    @staticmethod
    def _where(session_id: str) -> tuple[str, str]:
        replica, dot, local = session_id.partition(".")
        if not dot or not replica or not local:
            raise errors.NotFound(f"no session {session_id[:40]!r}: it ended, or never existed (GET /api/sessions)")
        return replica, local

    async def publish(self, sdp: str, look: LookUpdate, client: str = "") -> OfferAnswer:
        answer = OfferAnswer.model_validate(await self._call("publish", None, sdp=sdp, look=look, client=client))
        return answer.model_copy(update={"peer_id": f"{answer.replica}.{answer.peer_id}"})

    async def check(self, session_id: str, ingest: bool = False) -> None:
        replica, local = self._where(session_id)
        await self._call("check", replica, session_id=local, ingest=ingest)

    async def end(self, session_id: str, ingest: bool = False) -> None:
        replica, local = self._where(session_id)
        await self._call("end", replica, session_id=local, ingest=ingest)

    async def restyle(self, session_id: str, update: LookUpdate) -> None:
        replica, local = self._where(session_id)
        await self._call("restyle", replica, session_id=local, update=update)

    async def watch(self, session_id: str, sdp: str, client: str = "") -> tuple[str, str]:
        replica, local = self._where(session_id)
        viewer, answer = await self._call("watch", replica, session_id=local, sdp=sdp, client=client)
        return str(viewer), str(answer)

    async def check_viewer(self, session_id: str, viewer_id: str) -> None:
        replica, local = self._where(session_id)
        await self._call("check_viewer", replica, session_id=local, viewer_id=viewer_id)

    async def stop_watching(self, session_id: str, viewer_id: str) -> None:
        replica, local = self._where(session_id)
        await self._call("stop_watching", replica, session_id=local, viewer_id=viewer_id)

    async def sessions(self) -> list[SessionInfo]:
        """Every worker's sessions, each named as the ingress names it."""
        listed: list[SessionInfo] = []
        for worker in list(VIEW):
            with contextlib.suppress(errors.NotFound):
                for info in await self._call("sessions", str(worker["id"])):
                    listed.append(info.model_copy(update={"id": f"{worker['id']}.{info.id}"}))
        return listed


def worker_options(cluster: ClusterSettings, settings: Settings) -> dict[str, Any]:
    """The worker deployment's Ray Serve options: the router, placement, drain time, count or autoscaling."""
    options: dict[str, Any] = dict(
        name=WORKER,
        ray_actor_options={
            "num_cpus": 1.0 if cluster.replica_cpus is None else cluster.replica_cpus,
            "num_gpus": cluster.replica_gpus,
        },
        request_router_config=RequestRouterConfig.model_validate(
            {
                "request_router_class": ROUTER,
                "request_routing_stats_period_s": cluster.stats_period,
                "request_routing_stats_timeout_s": max(2.0, 4 * cluster.stats_period),
            }
        ),
        max_ongoing_requests=max(8, 2 * settings.max_peers),
        graceful_shutdown_wait_loop_s=1.0,
        graceful_shutdown_timeout_s=cluster.drain_seconds + 10.0,
        health_check_period_s=2.0,
        health_check_timeout_s=10.0,
    )
    if cluster.autoscaling:
        target = cluster.peers_per_replica or max(1.0, 0.75 * settings.max_peers)
        options["autoscaling_config"] = {
            "min_replicas": cluster.replicas,
            "max_replicas": cluster.max_replicas,
            "initial_replicas": cluster.replicas,
            "look_back_period_s": max(2.0, 4 * cluster.stats_period),
            "upscale_delay_s": cluster.upscale_delay,
            "downscale_delay_s": cluster.downscale_delay,
            "policy": {"policy_function": PeersPolicy, "policy_kwargs": {"target": target}},
        }
    else:
        options["num_replicas"] = cluster.replicas
    return options


@serve.ingress()
class Front:
    """The ingress: the whole single-process app (page, REST, jobs, your own styles are refused), with its
    offers sent to the workers."""

    def __init__(
        self, workers: DeploymentHandle, settings: Settings, job_settings: JobSettings, style_settings: StyleSettings
    ) -> None:
        self.peers = RemotePeers(workers)
        self._asgi = create_app(settings, job_settings, style_settings, live=self.peers)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self._asgi


def application(
    settings: Settings, job_settings: JobSettings, style_settings: StyleSettings, cluster: ClusterSettings
) -> Application:
    workers = cast(Deployment, serve.deployment(LiveWorker)).options(**worker_options(cluster, settings))
    # The ingress only relays offers and serves the page: it reserves no CPU, so the workers can have them all.
    front = cast(Deployment, serve.deployment(Front)).options(
        name="Front", num_replicas=1, ray_actor_options={"num_cpus": 0}
    )
    return front.bind(workers.bind(settings, cluster.drain_seconds), settings, job_settings, style_settings)


class Stopped(Exception):
    """SIGINT or SIGTERM reached the server: deploying or serving ends, and Serve and Ray are shut down."""


def _stop(signum: int, frame: object) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal while the workers drain ends the process
        signal.signal(sig, signal.SIG_DFL)
    raise Stopped(signal.Signals(signum).name)


def run(settings: Settings, job_settings: JobSettings, style_settings: StyleSettings, cluster: ClusterSettings) -> None:
    """``livestyle-serve --engine ray``: start (or join) Ray, fit the workers to it, deploy, serve until Ctrl-C or
    SIGTERM, at any point of that (even while deploying), then let the workers drain and shut down Serve and the
    Ray cluster this process started. :class:`ClusterDoesNotFit` when the workers cannot be placed."""
    ray.init(address=cluster.address, include_dashboard=False, logging_level=logging.WARNING)
    for sig in (signal.SIGINT, signal.SIGTERM):  # ours, not Ray's (its SIGTERM exits without shutting Serve down)
        signal.signal(sig, _stop)
    deployed = False
    try:
        cluster, fitted = fit_to_cluster(cluster, ray.cluster_resources())
        if fitted:
            log.warning("%s", fitted)
        serve.start(http_options={"host": settings.host, "port": settings.port})
        deployed = True
        serve.run(application(settings, job_settings, style_settings, cluster), name=APP_NAME, route_prefix="/")
        log.info(
            "serving on http://%s:%d with %d stylizing workers (%g CPU each)",
            settings.host,
            settings.port,
            cluster.replicas,
            cluster.replica_cpus,
        )
        while True:
            time.sleep(3600)
    except Stopped as exc:
        log.info("%s: stopping (the workers drain their streams)", exc)
    finally:
        if deployed:
            with contextlib.suppress(Exception):
                serve.delete(APP_NAME)  # the workers drain
            serve.shutdown()
        ray.shutdown()
