"""Database plumbing shared by the registry and the monitor: SQLite by default (one file
each under the data directory), PostgreSQL when ``EDGE_DATABASE_URL`` says so, the schema
brought up to date by Alembic at every start. Each service keeps its own tables and its
own Alembic version table, so both may share one PostgreSQL database."""

import os
import zlib
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Engine, MetaData, create_engine, event, text


def database_url(configured: str | None, data_dir: Path, filename: str) -> str:
    """The configured URL (a plain ``postgresql://`` read as ``postgresql+psycopg://``, the
    driver installed), or the SQLite file ``data_dir/filename``."""
    if not configured:
        return f"sqlite:///{Path(data_dir).absolute() / filename}"
    for plain in ("postgresql://", "postgres://"):
        if configured.startswith(plain):
            return "postgresql+psycopg://" + configured.removeprefix(plain)
    return configured


def make_engine(url: str, *, writers_only_lock: bool = False) -> Engine:
    """An engine; on SQLite, transactions take the write lock at BEGIN (SQLAlchemy's recipe:
    pysqlite otherwise starts them late and as readers, so two writers can deadlock).
    ``writers_only_lock``: only connections with the ``writer=True`` execution option do,
    so that readers never wait for a long write."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only, a file from before this rule too (SQLite gives its -wal and -shm
        # files the database's mode).
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = not writers_only_lock or conn.get_execution_options().get("writer", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def migrate(engine: Engine, migrations: Path) -> None:
    """Bring the schema to the latest migration in ``migrations`` (idempotent). On
    PostgreSQL, replicas starting together take turns (a lock held until the migration
    commits): the later ones find the schema current instead of creating it twice."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            key = zlib.crc32(f"edge-migrations:{migrations.parent.name}".encode())
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def run_migrations(metadata: MetaData, version_table: str) -> None:
    """The body of a service's Alembic ``env.py``: run with the connection that
    :func:`migrate` handed over."""
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
