"""What the routes depend on: the services built in the app's lifespan, and the slots that bound the work a
route may start at once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.engine import Engine
from service.errors import ServiceBusy
from service.live.signalling import LivePeers
from service.settings import Settings
from service.thumbnails import Thumbnails


@dataclass(frozen=True)
class Services:
    """What the routes need; built in the app's lifespan."""

    settings: Settings
    engine: Engine
    peers: LivePeers
    thumbnails: Thumbnails
    executor: Executor
    stylize_slots: Slots


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class Slots:
    """At most ``count`` holders at once; one more is refused at once with 503 (never queued on the loop)."""

    def __init__(self, count: int, what: str) -> None:
        self.count, self.what, self.taken = count, what, 0

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.taken >= self.count:
            raise ServiceBusy(f"all {self.count} {self.what} slots are busy; try again shortly", retry_after=1)
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1
