"""The registry's tables, its database engine and the migrations applied at start-up.

Table names start with ``registry_`` and Alembic keeps its own version table, so the
registry can share one PostgreSQL database with the monitor.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, DateTime, Engine, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

import edge_sql as sql

VERSION_TABLE = "alembic_version_registry"
MIGRATIONS = Path(__file__).with_name("migrations")


class Base(DeclarativeBase):
    pass


class DatashareRow(Base):
    __tablename__ = "registry_datashares"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    ae_title: Mapped[str] = mapped_column(String(16))
    match: Mapped[str] = mapped_column(String(8))
    allowed_calling_aets: Mapped[list[str]] = mapped_column(JSON)
    allowed_networks: Mapped[list[str]] = mapped_column(JSON)
    destination: Mapped[str | None] = mapped_column(Text)
    destination_credentials: Mapped[dict[str, str]] = mapped_column(JSON)
    enabled: Mapped[bool]
    # None: forwarded byte for byte; else the Deidentification as a dict.
    deidentification: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(200))


class HistoryRow(Base):
    """Who changed which datashare, when and how; kept after the datashare is deleted."""

    __tablename__ = "registry_history"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    datashare_id: Mapped[str] = mapped_column(String(64), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)


class OutboxRow(Base):
    """A change committed but not yet published: the event, and the KV entry to write
    (``kv_value`` None: delete the key). Deleted once both reached JetStream."""

    __tablename__ = "registry_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    datashare_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(Text)
    kv_value: Mapped[str | None] = mapped_column(Text)


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest migration (idempotent)."""
    sql.migrate(engine, MIGRATIONS)


def open_database(url: str) -> tuple[Engine, sessionmaker[Session]]:
    engine = sql.make_engine(url)
    migrate(engine)
    return engine, sessionmaker(engine, expire_on_commit=False)
