"""``edge-registry`` as a process: migrates its database, serves, stops cleanly on SIGTERM."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from edge_embedded.ports import free_ports
from edge_registry import main as registry_main
from edge_testing.servers import wait_for_port, wait_until

REGISTRY = str(Path(sys.executable).with_name("edge-registry"))


def registry_env(tmp_path: Path, nats_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return {
        **env,
        "EDGE_DATA_DIR": str(tmp_path / "var"),
        "EDGE_NATS_URL": nats_url,
        "EDGE_API_TOKEN": "alice:alice-token",
        "EDGE_REGISTRY_HOST": "127.0.0.1",
        **extra,
    }


def test_serves_then_stops_cleanly_on_sigterm(tmp_path, nats):
    (port,) = free_ports(1)
    env = registry_env(tmp_path, nats.url, EDGE_REGISTRY_PORT=str(port))
    log = (tmp_path / "registry.log").open("w+")
    proc = subprocess.Popen([REGISTRY], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        response = httpx.post(
            f"{url}/api/v1/datashares",
            json={"id": "DS1"},
            headers={"Authorization": "Bearer alice-token"},
        )
        assert response.status_code == 201, response.text
        # The outbox is emptied once the change is on JetStream.
        db = sa.create_engine(f"sqlite:///{tmp_path / 'var' / 'registry.db'}")
        with db.connect() as conn:
            wait_until(
                lambda: conn.exec_driver_sql("SELECT count(*) FROM registry_outbox").scalar() == 0,
                what="outbox emptied",
            )
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version_registry")
            assert version.scalar() == "0002"
        db.dispose()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log.seek(0)
    text = log.read()
    assert "published datashare.created DS1" in text
    assert "Traceback" not in text


def test_refuses_to_start_without_a_token(monkeypatch, caplog):
    # In-process (starting the interpreter is slow): keep the test's own logging set-up.
    monkeypatch.setattr(registry_main, "configure_logging", lambda *a, **k: None)
    monkeypatch.setenv("EDGE_API_TOKEN", "")
    with pytest.raises(SystemExit) as exited:
        registry_main.main()
    assert exited.value.code == 2
    assert "EDGE_API_TOKEN is not set" in caplog.text
