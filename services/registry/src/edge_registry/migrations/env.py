"""Alembic environment: run with the connection handed over by ``edge_registry.db.migrate``."""

from edge_registry.db import VERSION_TABLE, Base
from edge_sql import run_migrations

run_migrations(Base.metadata, VERSION_TABLE)
