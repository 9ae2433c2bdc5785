"""The Ray Serve request router of the live workers: offers go where the most peer slots are free.

Serve ships this module by value into the ingress process (the one that holds the workers' handle); what the
router hears from the workers goes to ``service.http.cluster.VIEW`` (a module shipped by reference, so the
ingress's own copy), where /api/health reads it.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from ray.serve.request_router import PendingRequest, ReplicaID, ReplicaResult, RequestRouter, RunningReplica

from service.http import cluster


class FreeSlotRouter(RequestRouter):
    """Ranks workers by free peer slots, most first, counting the offers this router sent since a worker's
    last report (its ``offers`` counter moves when it has seen them): a burst of offers spreads instead of
    landing where the last report said there was room. Workers without room rank last (they answer 503).
    A call that names a ``replica`` (a WHIP or WHEP call on a session) goes to that worker only."""

    def initialize_state(self, **kwargs: Any) -> None:
        self._sent: dict[ReplicaID, deque[float]] = {}
        self._offers_seen: dict[ReplicaID, int] = {}

    def _in_flight(self, replica: RunningReplica) -> int:
        sent = self._sent.setdefault(replica.replica_id, deque())
        offers = int(replica.routing_stats.get("offers", 0))
        seen = self._offers_seen.get(replica.replica_id)
        self._offers_seen[replica.replica_id] = offers
        for _ in range(max(0, offers - seen) if seen is not None else 0):
            if sent:
                sent.popleft()
        while sent and time.monotonic() - sent[0] > 10.0:  # its report never came: forget the guess
            sent.popleft()
        return len(sent)

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        pinned = pending_request.kwargs.get("replica") if pending_request is not None else None
        if pinned is not None:  # a call on a session goes to its worker; if that is gone, any says 404
            held = [r for r in candidate_replicas if r.replica_id.unique_id == pinned]
            return [held] if held else [candidate_replicas[:1]]
        room = {r.replica_id: cluster.free_slots(r.routing_stats) - self._in_flight(r) for r in candidate_replicas}
        ranked = sorted(candidate_replicas, key=lambda r: (-room[r.replica_id], int(r.routing_stats.get("peers", 0))))
        return [[r] for r in ranked]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result: ReplicaResult) -> None:
        if pending_request.metadata.call_method == "open" or (
            pending_request.metadata.call_method == "session_call" and pending_request.args[:1] == ["publish"]
        ):
            self._sent.setdefault(replica_id, deque()).append(time.monotonic())

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        cluster.VIEW[:] = [dict(r.routing_stats, id=r.replica_id.unique_id) for r in replicas]
