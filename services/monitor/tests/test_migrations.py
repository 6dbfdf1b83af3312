"""The migrations create exactly the tables the models describe."""

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from edge_monitor import db
from edge_monitor.config import MonitorSettings
from edge_monitor.models import Base
from edge_monitor.status import status

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


def test_existing_counts_are_carried_over_by_sop_instance(tmp_path):
    """Projections written before 0003 counted every version; after it, distinct SOP
    instances, each in the state of its latest received version."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    database_url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = db.make_engine(database_url)
    config = Config()
    config.set_main_option("script_location", str(db.MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.execute(text(
            "INSERT INTO monitor_datashares (id, description, ae_title, match, enabled, deleted,"
            " received, received_bytes, pending, pending_bytes, failing, failing_bytes, uploaded,"
            " uploaded_bytes, dead, dead_bytes, failures, last_error, refused,"
            " last_refused_reason, associations_total, associations_rejected, studies)"
            " VALUES ('DS', '', 'DS', 'called', 1, 0, 3, 6000, 1, 3000, 0, 0, 2, 3000, 0, 0, 0,"
            " '', 0, '', 1, 0, 1)"
        ))  # fmt: skip
        connection.execute(text(
            "INSERT INTO monitor_studies VALUES ('DS', '1.9', 3, 2, 0, 0,"
            " '2026-11-28 09:00:00', '2026-11-28 09:00:03')"
        ))  # fmt: skip
        for key, sop, size, state, second in [
            ("DS/v1", "1.9.1", 1000, "uploaded", 1),
            ("DS/v2", "1.9.1", 3000, "pending", 3),  # the newer version, waiting
            ("DS/other", "1.9.2", 2000, "uploaded", 2),
        ]:
            connection.execute(text(
                "INSERT INTO monitor_instances (key, datashare, study_uid, sop_instance_uid, size,"
                " state, received_at, state_at, attempts, error, destination) VALUES"
                f" ('{key}', 'DS', '1.9', '{sop}', {size}, '{state}',"
                f" '2026-11-28 09:00:0{second}', '2026-11-28 09:00:0{second}', 0, '', '')"
            ))  # fmt: skip
    db.migrate(engine)
    settings = MonitorSettings(database_url=database_url)
    with db.reader(engine)() as session:
        [ds] = status(session, settings, datetime(2026, 11, 28, 10, tzinfo=UTC))["datashares"]
    counts = [ds[f"instances_{c}"] for c in ("received", "uploaded", "pending", "replaced")]
    assert counts == [2, 1, 1, 1] and ds["versions_received"] == 3
    assert (ds["bytes_received"], ds["bytes_pending"]) == (5000, 3000)
    assert ds["studies"][0]["instances_received"] == 2
    engine.dispose()
