"""The ``edge-receiver`` command: starts from environment variables, stops cleanly."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from receiver_testing import put_datashares, receiver_settings_for

from edge_core.datashares import Datashare
from edge_testing.dcmtk import echoscu as echo
from edge_testing.servers import wait_for_port, wait_until


def receiver_env(settings) -> dict[str, str]:
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"EDGE_{name.upper()}"] = str(value)
    return env


def start_receiver_process(settings, log_path: Path) -> subprocess.Popen:
    command = Path(sys.executable).with_name("edge-receiver")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(command)], env=receiver_env(settings), stdout=log, stderr=subprocess.STDOUT
        )
    wait_for_port(settings.receiver_port, timeout_s=60)
    return proc


def test_command_serves_and_exits_cleanly_on_sigterm(edge_settings, tmp_path):
    settings = receiver_settings_for(edge_settings, tmp_path / "data")
    put_datashares(settings, Datashare(id="MAIN1", ae_title="MAIN1"))
    proc = start_receiver_process(settings, tmp_path / "receiver.log")
    try:
        wait_until(lambda: echo(settings.receiver_port, "MAIN1"), what="echo to succeed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "receiver.log").read_text()
    finally:
        proc.kill()
