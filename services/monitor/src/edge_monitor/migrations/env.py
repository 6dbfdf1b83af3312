"""Alembic environment: the connection is handed over by ``edge_monitor.db.migrate``."""

from edge_monitor.db import VERSION_TABLE
from edge_monitor.models import Base
from edge_sql import run_migrations

run_migrations(Base.metadata, VERSION_TABLE)
