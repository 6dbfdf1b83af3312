"""Replicas of the registry and the monitor starting together on one empty PostgreSQL
database: each service's migrations run once, the others wait and find the schema current
(without the lock, the second CREATE TABLE fails and that replica crashes at start)."""

import subprocess
import sys

import sqlalchemy as sa


def test_replicas_migrate_one_database_together(postgres_database):
    # Processes (as replicas are): Alembic's context is one per process.
    code = "import sys, edge_sql, edge_{0}.db as d; d.migrate(edge_sql.make_engine(sys.argv[1]))"
    procs = [
        subprocess.Popen([sys.executable, "-c", code.format(service), postgres_database],
                         stderr=subprocess.PIPE, text=True)
        for service in ["registry", "monitor"] * 2
    ]  # fmt: skip
    failures = [p.communicate(timeout=120)[1] for p in procs if p.wait(120) != 0]
    assert not failures, failures
    names = sa.inspect(sa.create_engine(postgres_database)).get_table_names()
    assert "registry_outbox" in names and "monitor_position" in names, names
