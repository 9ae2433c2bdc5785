"""Every route, one module per resource, gathered under ``/api`` once (the page and the runtime files are
mounted by the app factory, service/http/app.py)."""

from fastapi import APIRouter

from service.http.routes import broadcast, health, in_browser, jobs, learned, live, styles, stylize

api_router = APIRouter(prefix="/api")
for module in (health, styles, stylize, live, broadcast, jobs, learned, in_browser):
    api_router.include_router(module.router)
