"""Database engine and migrations (SQLite by default, PostgreSQL supported)."""

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import edge_sql as sql

VERSION_TABLE = "alembic_version_monitor"
MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    # Folding holds the write lock for a whole batch; status reads must not wait for it.
    return sql.make_engine(url, writers_only_lock=True)


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
    sql.migrate(engine, MIGRATIONS)
