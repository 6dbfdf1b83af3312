"""HTTP: the status API (bearer token), the dashboard page, ``/metrics`` and ``/healthz``."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from edge_core.auth import BearerAuth, parse_tokens
from edge_core.events import InstanceRetryRequested, InstanceRetryRequestedEvent, utcnow
from edge_monitor import models as m
from edge_monitor import status as st
from edge_monitor.backlog import Backlog
from edge_monitor.config import MonitorSettings
from edge_monitor.metrics import make_registry

DASHBOARD = Path(__file__).parent / "static" / "index.html"

Publish = Callable[[InstanceRetryRequestedEvent], Awaitable[Any]]


@dataclass
class Monitor:
    """What the routes need; ``publish`` is set once NATS is connected."""

    settings: MonitorSettings
    sessions: sessionmaker[Session]
    backlog: Backlog = field(default_factory=Backlog)
    publish: Publish | None = None


class RetryRequest(BaseModel):
    """Which dead letters to retry: the listed quarantine keys, or all of a datashare's."""

    quarantine_keys: list[str] = []
    datashare: str | None = None


def create_app(monitor: Monitor) -> FastAPI:
    settings = monitor.settings
    app = FastAPI(
        title="Edge monitor",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        # 413 once a body (declared or streamed) passes this; the rest is never read.
        max_body_size=settings.api_max_body_bytes,
    )
    tokens = parse_tokens(settings.api_token.get_secret_value())
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
    registry = make_registry(monitor.sessions, monitor.backlog)
    page = DASHBOARD.read_text()

    def caller(request: Request) -> str:
        return request.state.actor

    Caller = Annotated[str, Depends(caller)]

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return page

    # Documented as what it is (Prometheus text), not the default JSON.
    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/status")
    def get_status(_: Caller) -> dict[str, Any]:
        with monitor.sessions() as session:
            return st.status(session, monitor.settings, utcnow(), monitor.backlog)

    @app.get("/api/v1/datashares/{datashare_id}/status")
    def get_datashare_status(datashare_id: str, _: Caller) -> dict[str, Any]:
        with monitor.sessions() as session:
            ds = session.get(m.Datashare, datashare_id)
            if ds is None or ds.deleted:
                raise HTTPException(404, f"no datashare {datashare_id!r}")
            buffer = session.get(m.Buffer, 1)
            return st.datashare_status(
                session, ds, monitor.settings, utcnow(), buffer, backlog=monitor.backlog
            )

    @app.get("/api/v1/dead-letters")
    def get_dead_letters(_: Caller, datashare: str | None = None) -> list[dict[str, Any]]:
        with monitor.sessions() as session:
            return st.dead_letters(session, datashare)

    @app.post("/api/v1/dead-letters/retry", status_code=202)
    async def retry(body: RetryRequest | list[str], name: Caller) -> dict[str, Any]:
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
        return {"requested": sorted(found)}

    return app


def _dead_letters(sessions: sessionmaker[Session], request: RetryRequest) -> dict[str, str]:
    """``{quarantine key: datashare}`` of the requested dead letters that exist."""
    query = select(m.Instance.quarantine_key, m.Instance.datashare).where(
        m.Instance.state == "dead"
    )
    if request.quarantine_keys:
        query = query.where(m.Instance.quarantine_key.in_(request.quarantine_keys))
    if request.datashare is not None:
        query = query.where(m.Instance.datashare == request.datashare)
    with sessions() as session:
        return {key: ds for key, ds in session.execute(query).all() if key}
