"""Database engine and migrations (SQLite by default, PostgreSQL supported)."""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

VERSION_TABLE = "alembic_version_monitor"
MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    # pysqlite starts transactions late (at the first write), so the stream position read at
    # the start of a batch could be stale; let SQLAlchemy emit BEGIN itself (its documented
    # recipe), IMMEDIATE for writers so that two writers serialise instead of interleaving.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("writer", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def reader(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def writer(engine: Engine) -> sessionmaker[Session]:
    """Sessions that fold events: one writer at a time (BEGIN IMMEDIATE on SQLite), changes
    written once per batch (no autoflush: see ``projections._get``)."""
    return sessionmaker(
        engine.execution_options(writer=True), expire_on_commit=False, autoflush=False
    )


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision (run at every start)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
