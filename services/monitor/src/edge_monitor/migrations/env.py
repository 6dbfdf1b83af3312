"""Alembic environment: the connection is handed over by ``edge_monitor.db.migrate``."""

from alembic import context

from edge_monitor.db import VERSION_TABLE
from edge_monitor.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
