"""The REST API: ``/api/v1/datashares`` (bearer token) and ``/healthz`` (open)."""

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import SecretStr, ValidationError
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from edge_core.auth import BearerAuth
from edge_core.destination_policy import DestinationPolicy
from edge_core.settings import DEFAULT_MAX_BODY_BYTES
from edge_core.sitekey import SiteKey
from edge_registry import datashares
from edge_registry.schemas import DatashareOut, DatashareSpec, DatashareUpdate, HistoryEntry

_bearer = HTTPBearer(auto_error=False, description="A token from EDGE_API_TOKEN")


def create_app(
    sessions: sessionmaker[Session],
    tokens: dict[str, str],
    on_commit: Callable[[], None] = lambda: None,
    lifespan: Any = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    destinations: DestinationPolicy | None = None,
    site_key: SiteKey | None = None,
) -> FastAPI:
    """``on_commit`` is called after every committed change (it wakes the outbox relay);
    ``destinations``: where the site lets datashares send (default: the strict policy);
    ``site_key`` encrypts destination credentials (default: a new key, for tests)."""
    policy = destinations or DestinationPolicy()
    key = site_key or SiteKey.generate()
    app = FastAPI(
        title="Edge registry",
        summary="Datashares, their AE-title mappings and destinations",
        lifespan=lifespan,
        # 413 once a body (declared or streamed) passes this; the rest is never read.
        max_body_size=max_body_bytes,
    )
    # No /api/ path, not even an unknown one, answers anything but 401 without a token.
    app.add_middleware(BearerAuth, guards={"/api/": tokens})

    def session() -> Iterator[Session]:
        with sessions() as s:
            yield s

    def actor(request: Request) -> str:
        name: str = request.state.actor  # set by BearerAuth
        return name

    Db = Annotated[Session, Depends(session)]
    Actor = Annotated[str, Depends(actor)]
    # The bearer scheme is declared for the OpenAPI page; BearerAuth does the checking.
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(_bearer)])

    @api.post("/datashares", status_code=201, response_model=DatashareOut)
    def create_datashare(spec: DatashareSpec, db: Db, who: Actor) -> DatashareOut:
        _check_destination(policy, spec)
        row = datashares.create(db, _encrypted(spec, key), who)
        on_commit()
        return datashares.to_out(row)

    @api.get("/datashares", response_model=list[DatashareOut])
    def list_datashares(db: Db, enabled: bool | None = None) -> list[DatashareOut]:
        return [datashares.to_out(r) for r in datashares.list_all(db, enabled)]

    @api.get("/datashares/{ds_id}", response_model=DatashareOut)
    def get_datashare(ds_id: str, db: Db) -> DatashareOut:
        return datashares.to_out(datashares.get(db, ds_id))

    @api.patch("/datashares/{ds_id}", response_model=DatashareOut)
    def update_datashare(ds_id: str, patch: DatashareUpdate, db: Db, who: Actor) -> DatashareOut:
        changes = patch.model_dump(exclude_unset=True)
        for name, empty in (
            ("description", ""),
            ("allowed_calling_aets", []),
            ("allowed_networks", []),
            ("destination_credentials", {}),
        ):
            if name in changes and changes[name] is None:
                changes[name] = empty
        # Locked until committed: a concurrent PATCH applies to this one's result.
        row = datashares.get(db, ds_id, for_update=True)
        current = datashares.current_spec(row)
        try:
            spec = DatashareSpec.model_validate({**current, **changes})
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from None
        # Only a change of where or with what: a datashare set up under a looser policy
        # can still be edited (or disabled) without first moving its destination.
        if changes.keys() & {"destination", "destination_credentials"}:
            _check_destination(policy, spec)
        row = datashares.update(db, row, _encrypted(spec, key), who)
        on_commit()
        return datashares.to_out(row)

    @api.delete("/datashares/{ds_id}", status_code=204)
    def delete_datashare(ds_id: str, db: Db, who: Actor) -> Response:
        datashares.delete(db, ds_id, who)
        on_commit()
        return Response(status_code=204)

    @api.get("/datashares/{ds_id}/history", response_model=list[HistoryEntry])
    def datashare_history(ds_id: str, db: Db) -> list[HistoryEntry]:
        return datashares.history(db, ds_id)

    app.include_router(api)

    @app.get("/healthz", include_in_schema=False)
    def healthz(db: Db) -> dict[str, str]:
        db.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.exception_handler(datashares.NotFound)
    def _not_found(_: Request, exc: datashares.NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(datashares.Conflict)
    def _conflict(_: Request, exc: datashares.Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": jsonable_encoder(_safe_errors(exc.errors()))}, 422)

    return app


def _encrypted(spec: DatashareSpec, key: SiteKey) -> DatashareSpec:
    """The spec with its credentials encrypted (those kept from the row already are), as
    the database, the outbox and the datashares bucket hold them."""
    credentials = {
        name: SecretStr(key.encrypt(value.get_secret_value()))
        for name, value in spec.destination_credentials.items()
    }
    return spec.model_copy(update={"destination_credentials": credentials})


def _check_destination(policy: DestinationPolicy, spec: DatashareSpec) -> None:
    """The site's limits on destinations (see edge_core.destination_policy), as a 422."""
    if spec.destination is None:
        return  # the site's own default
    try:
        policy.check(spec.destination, set(spec.destination_credentials))
    except ValueError as exc:
        error = {"type": "destination_refused", "loc": ("body", "destination"), "msg": str(exc)}
        raise RequestValidationError([error]) from None


def _safe_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the echoed input where it could hold a secret: only the
    value of a single ordinary field is shown back."""
    safe = []
    for error in errors:
        error = {k: v for k, v in error.items() if k not in ("ctx", "url")}
        loc = tuple(error.get("loc", ()))
        if len(loc) < 2 or loc[0] != "body" or loc[1] == "destination_credentials":
            error.pop("input", None)
        safe.append(error)
    return safe
