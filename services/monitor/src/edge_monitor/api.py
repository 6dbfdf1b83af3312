"""HTTP: the status API (bearer token), the dashboard page, ``/metrics`` and ``/healthz``.

The routes live on module-level routers and reach the :class:`Monitor` through the
``get_monitor`` dependency (``app.state.monitor``), so a test may swap it with
``app.dependency_overrides``."""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge_core.auth import BearerAuth
from edge_core.events import InstanceRetryRequested, InstanceRetryRequestedEvent, utcnow
from edge_monitor import models, schemas, status
from edge_monitor.backlog import Backlog
from edge_monitor.config import MonitorSettings
from edge_monitor.metrics import make_registry
from edge_monitor.schemas import RetryRequest

DASHBOARD = Path(__file__).parent / "static" / "index.html"

Publish = Callable[[InstanceRetryRequestedEvent], Awaitable[Any]]


@dataclass
class Monitor:
    """What the routes need; ``publish`` is set once NATS is connected."""

    settings: MonitorSettings
    sessions: sessionmaker[Session]
    backlog: Backlog = field(default_factory=Backlog)
    publish: Publish | None = None


def get_monitor(request: Request) -> Monitor:
    found: Monitor = request.app.state.monitor
    return found


def caller(request: Request) -> str:
    name: str = request.state.actor  # set by BearerAuth
    return name


def metrics_registry(request: Request) -> CollectorRegistry:
    registry: CollectorRegistry = request.app.state.metrics
    return registry


MonitorDep = Annotated[Monitor, Depends(get_monitor)]
Caller = Annotated[str, Depends(caller)]

# Open: liveness, the page (its API calls carry the token) and the scrape (its own guard).
site = APIRouter()
api = APIRouter(prefix="/api/v1")


@site.get("/healthz")
def healthz() -> schemas.Healthy:
    return schemas.Healthy(status="ok")


@site.get("/", response_class=HTMLResponse)
def dashboard(request: Request) -> str:
    page: str = request.app.state.dashboard
    return page


# Documented as what it is (Prometheus text), not the default JSON.
@site.get("/metrics", response_class=PlainTextResponse)
def metrics(registry: Annotated[CollectorRegistry, Depends(metrics_registry)]) -> Response:
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@api.get("/status")
def get_status(monitor: MonitorDep, _: Caller) -> schemas.Status:
    with monitor.sessions() as session:
        doc = status.status(session, monitor.settings, utcnow(), monitor.backlog)
    return schemas.Status.model_validate(doc)


@api.get("/datashares/{datashare_id}/status")
def get_datashare_status(
    datashare_id: str, monitor: MonitorDep, _: Caller
) -> schemas.DatashareStatus:
    with monitor.sessions() as session:
        datashare = session.get(models.Datashare, datashare_id)
        if datashare is None or datashare.deleted:
            raise HTTPException(404, f"no datashare {datashare_id!r}")
        buffer = session.get(models.Buffer, 1)
        doc = status.datashare_status(
            session, datashare, monitor.settings, utcnow(), buffer, backlog=monitor.backlog
        )
    return schemas.DatashareStatus.model_validate(doc)


@api.get("/dead-letters")
def get_dead_letters(
    monitor: MonitorDep, _: Caller, datashare: str | None = None
) -> list[schemas.DeadLetter]:
    with monitor.sessions() as session:
        letters = status.dead_letters(session, datashare)
    return [schemas.DeadLetter.model_validate(letter) for letter in letters]


@api.post("/dead-letters/retry", status_code=202)
async def retry(
    body: RetryRequest | list[str], monitor: MonitorDep, name: Caller
) -> schemas.RetryRequested:
    request = RetryRequest(quarantine_keys=body) if isinstance(body, list) else body
    if not request.quarantine_keys and request.datashare is None:
        # In the shape the OpenAPI document gives every 422 (FastAPI's own).
        raise RequestValidationError(
            [{"type": "missing", "loc": ["body"], "msg": "give quarantine_keys or a datashare"}]
        )
    found = await run_in_threadpool(_dead_letters, monitor.sessions, request)
    unknown = sorted(set(request.quarantine_keys) - set(found))
    if unknown:
        raise HTTPException(404, {"message": "not dead letters", "quarantine_keys": unknown})
    if monitor.publish is None:
        raise HTTPException(503, "not connected to NATS yet")
    for key, datashare in found.items():
        event = InstanceRetryRequestedEvent(
            datashare=datashare,
            data=InstanceRetryRequested(quarantine_key=key, requested_by=name),
        )
        await monitor.publish(event)
    return schemas.RetryRequested(requested=sorted(found))


def create_app(
    monitor: Monitor,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    settings = monitor.settings
    app = FastAPI(
        title="Edge monitor",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        lifespan=lifespan,
        # 413 once a body (declared or streamed) passes this; the rest is never read.
        max_body_size=settings.api_max_body_bytes,
    )
    tokens = settings.api_tokens
    # /metrics lists every datashare id (an AE title, the receiver's only gate): it takes the
    # API token, or a metrics token for a Prometheus that should read nothing else.
    metrics_tokens = dict(tokens)
    if settings.metrics_token.get_secret_value():
        metrics_tokens["metrics"] = settings.metrics_token.get_secret_value()
    app.add_middleware(
        BearerAuth,
        guards={"/api/": tokens, "/metrics": metrics_tokens},
        open_paths={"/api/docs", "/api/openapi.json"},
    )
    app.state.monitor = monitor
    app.state.metrics = make_registry(monitor.sessions, monitor.backlog)
    app.state.dashboard = DASHBOARD.read_text()
    app.include_router(site)
    app.include_router(api)
    return app


def _dead_letters(sessions: sessionmaker[Session], request: RetryRequest) -> dict[str, str]:
    """``{quarantine key: datashare}`` of the requested dead letters that exist."""
    query = select(models.Instance.quarantine_key, models.Instance.datashare).where(
        models.Instance.state == "dead"
    )
    if request.quarantine_keys:
        query = query.where(models.Instance.quarantine_key.in_(request.quarantine_keys))
    if request.datashare is not None:
        query = query.where(models.Instance.datashare == request.datashare)
    with sessions() as session:
        return {key: datashare for key, datashare in session.execute(query).all() if key}
