"""Replicas of the registry and the monitor starting together on one empty PostgreSQL
database: each service's migrations run once, the others wait and find the schema current
(without the lock, the second CREATE TABLE fails and that replica crashes at start)."""

import subprocess
import sys
import uuid

import pytest
import sqlalchemy as sa

from edge_testing.plugin import POSTGRES_ADMIN_URL


@pytest.fixture
def empty_database():
    admin = sa.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    name = f"edge_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {exc}")
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()


def test_replicas_migrate_one_database_together(empty_database):
    # Processes (as replicas are): Alembic's context is one per process.
    code = "import sys, edge_sql, edge_{0}.db as d; d.migrate(edge_sql.make_engine(sys.argv[1]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code.format(service), empty_database],
                         stderr=subprocess.PIPE, text=True)
        for service in ["registry", "monitor"] * 2
    ]  # fmt: skip
    failures = [p.communicate(timeout=120)[1] for p in procs if p.wait(120) != 0]
    assert not failures, failures
    names = sa.inspect(sa.create_engine(empty_database)).get_table_names()
    assert "registry_outbox" in names and "monitor_position" in names, names
