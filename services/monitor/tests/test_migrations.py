"""The migrations create exactly the tables the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from edge_monitor import db
from edge_monitor.models import Base

pytestmark = pytest.mark.both_databases


def test_migrations_match_the_models(settings):
    engine = db.make_engine(settings.sqlalchemy_url())
    db.migrate(engine)
    db.migrate(engine)  # a second start: nothing to do
    with engine.connect() as connection:
        # Only our tables: the registry's may be in the same database.
        ours = lambda name, type_, _parent: type_ != "table" or name.startswith("monitor_")  # noqa: E731
        context = MigrationContext.configure(
            connection, opts={"version_table": db.VERSION_TABLE, "include_name": ours}
        )
        assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(connection).get_table_names())
    # The registry may share the database: every table of ours is prefixed.
    assert {db.VERSION_TABLE, *Base.metadata.tables} <= tables
    assert all(name.startswith("monitor_") for name in Base.metadata.tables)
    engine.dispose()
