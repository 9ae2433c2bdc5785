"""The FastAPI app factory: the services in its lifespan, the gate, the routes, the error handlers and the page
(the entry point that serves it is service/cli.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from service.engine import Engine
from service.errors import ModelLoadError, ServiceError
from service.http import gate
from service.http.deps import Services, Slots
from service.http.routes import api_router, in_browser
from service.live.signalling import LivePeers, loopback_host_addresses, open_registry
from service.settings import JobSettings, Settings, StyleSettings
from service.thumbnails import Thumbnails

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parents[1] / "web"


def create_app(
    settings: Settings,
    job_settings: JobSettings | None = None,
    style_settings: StyleSettings | None = None,
    live: LivePeers | None = None,
) -> FastAPI:
    """The whole service; models load in the lifespan, so building the app is cheap. ``job_settings`` and
    ``style_settings``: from the entry point (``LIVESTYLE_JOBS_*``, ``LIVESTYLE_STYLES_*``); defaults when not
    given. ``live``: where offers go when not to this process (the Ray Serve workers of
    service/http/cluster.py); this process then holds no stream itself."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with contextlib.ExitStack() as stack:
            if settings.ice_loopback:
                stack.enter_context(loopback_host_addresses())
            try:
                engine = Engine.load(settings.models_dir, settings.runtime_options(), settings.default_model)
            except ModelLoadError as exc:
                log.error("cannot start: %s", exc)
                raise
            peers: LivePeers
            if live is None:  # streams here: REST shares the inference threads with them
                peers = registry = open_registry(settings, engine, stack)
                executor = registry.executor
            else:  # streams on the workers: this process runs REST only
                peers = live
                executor = stack.enter_context(
                    ThreadPoolExecutor(settings.inference_workers, thread_name_prefix="inference")
                )
            thumbnails = Thumbnails(settings.thumbnails_path, engine, (app.state.style_settings.dir / "thumbnails",))
            slots = Slots(settings.stylize_workers, "image stylizing")
            app.state.services = Services(settings, engine, peers, thumbnails, executor, slots)
            await peers.start()
            try:
                yield
            finally:
                await peers.close_all()

    app = FastAPI(
        title="livestyle",
        summary="Real-time video stylization: WebRTC webcam filter, live style blending, REST for apps",
        lifespan=lifespan,
    )
    app.state.job_settings = job_settings = job_settings or JobSettings.model_validate({})
    app.state.style_settings = style_settings = style_settings or StyleSettings.model_validate({})
    _guard(app, settings, job_settings, style_settings)
    app.include_router(api_router)
    app.include_router(in_browser.runtime_router)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web")
    return app


def _guard(app: FastAPI, settings: Settings, job_settings: JobSettings, style_settings: StyleSettings) -> None:
    """The gate every request passes before a route (service/http/gate.py): the token, foreign pages, each
    route's body limit, the job queue checked before an upload is read; and the allowed Host names."""
    overhead = 64 * 1024  # multipart headers and form fields around a file
    limits = gate.BodyLimits(
        {
            ("POST", "/api/stylize"): settings.max_upload_bytes + overhead,
            ("POST", "/api/jobs"): job_settings.max_upload_bytes + overhead,
            ("POST", "/api/styles"): style_settings.max_upload_bytes + overhead,
            ("POST", "/api/offer"): settings.max_sdp_bytes + overhead,
        }
    )

    def jobs_accepting() -> None:
        manager = getattr(app.state, "jobs", None)
        if manager is not None:
            manager.check_capacity()

    def styles_accepting() -> None:
        styles = getattr(app.state, "learning", None)
        if styles is not None:
            styles.check_capacity()

    app.add_middleware(
        gate.Gate,
        token=settings.api_token,
        allowed_origins=tuple(settings.allowed_origins),
        limits=limits,
        prechecks={("POST", "/api/jobs"): jobs_accepting, ("POST", "/api/styles"): styles_accepting},
    )
    if settings.allowed_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return JSONResponse(exc.detail(), status_code=exc.status_code, headers=exc.headers())


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Malformed JSON or fields: 400 with one readable line per problem."""
    assert isinstance(exc, RequestValidationError)
    problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(problems), "errors": _plain(exc.errors())}, status_code=400)


def _plain(errors: Any) -> Any:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg"))} for e in errors]
