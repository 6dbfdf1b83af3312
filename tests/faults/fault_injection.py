"""The faults, each a small function run while a PACS is in the middle of sending. Each
returns once the fault is over (what was killed is running again, what was taken away is
back); the PACS goes on sending throughout and sends again whatever was not answered
Success."""

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from edge_embedded.ports import port_is_free
from edge_embedded.s3_server import S3_EXTRA_PORTS
from edge_testing.dcmtk import echoscu
from edge_testing.servers import S3Server, wait_until
from edge_testing.stack import Stack


@dataclass
class Site:
    """The stack under test and its destination: a second S3 store, which the stack does
    not supervise, so that a fault can take it away."""

    stack: Stack
    destination: S3Server
    bucket: str

    def pid(self, name: str) -> int:
        return int((self.stack.data_dir / "run" / f"{name}.pid").read_text())

    def datashare_status(self, datashare: str) -> dict:
        code, body = self.stack.api("monitor", "GET", f"/api/v1/datashares/{datashare}/status")
        return body if code == 200 else {}


Fault = Callable[[Site, str], None]  # (site, datashare)


def kill_and_await_restart(service: str, ready: Callable[[Site, str], bool]) -> Fault:
    """``kill -9`` one process the launcher started; return once the launcher has started
    it again (a new pid) and it is ready."""

    def fault(site: Site, datashare: str) -> None:
        killed = site.pid(service)
        os.kill(killed, signal.SIGKILL)
        wait_until(lambda: site.pid(service) != killed, timeout_s=60, what=f"{service} restarted")
        wait_until(lambda: ready(site, datashare), timeout_s=90, what=f"{service} ready")

    fault.__doc__ = f"kill -9 {service}; the launcher restarts it"
    return fault


def _echo(site: Site, datashare: str) -> bool:
    return echoscu(site.stack.receiver_port, datashare)


def _registry_up(site: Site, datashare: str) -> bool:
    try:
        return site.stack.api("registry", "GET", f"/api/v1/datashares/{datashare}")[0] == 200
    except OSError:
        return False


def _monitor_up(site: Site, datashare: str) -> bool:
    try:
        return bool(site.datashare_status(datashare))
    except OSError:
        return False


def _started(site: Site, datashare: str) -> bool:
    return True  # no port of its own: a new pid is all there is to see


def kill_launcher(site: Site, datashare: str) -> None:
    """``kill -9`` the launcher itself: every process it started dies with it; start it
    again on the same data, as an operator (or systemd) would."""
    stack = site.stack
    assert stack.proc is not None
    stack.proc.kill()
    stack.proc.wait()
    ports = [
        stack.receiver_port,
        stack.registry_port,
        stack.monitor_port,
        stack.nats_port,
        stack.nats_port + 1,
        *range(stack.s3_port, stack.s3_port + 1 + S3_EXTRA_PORTS),
    ]
    wait_until(
        lambda: all(port_is_free(p) for p in ports), timeout_s=30, what="the old stack's ports"
    )
    stack.launch()
    wait_until(lambda: _echo(site, datashare), timeout_s=60, what="the receiver back")


def destination_away(site: Site, datashare: str) -> None:
    """Stop the destination until the uploader has failed to deliver, then start it again."""
    site.destination.process.stop()
    wait_until(
        lambda: site.datashare_status(datashare).get("instances_failed", 0) > 0,
        timeout_s=60,
        what="a failed delivery to be counted",
    )
    site.destination.process.start(timeout_s=90)


def quota_full(site: Site, datashare: str) -> None:
    """Stop the destination until the buffer is full and the receiver refuses (Out of
    Resources), then start it again: the buffer drains and the receiver accepts again."""

    def refusing() -> bool:
        code, body = site.stack.api("monitor", "GET", "/api/v1/status")
        return code == 200 and body["buffer"]["refusing"]

    site.destination.process.stop()
    wait_until(refusing, timeout_s=90, what="the receiver to refuse for a full buffer")
    site.destination.process.start(timeout_s=90)
    wait_until(lambda: not refusing(), timeout_s=90, what="the buffer to drain")


FAULTS: dict[str, Fault] = {
    "receiver": kill_and_await_restart("receiver-1", _echo),
    "uploader": kill_and_await_restart("uploader", _started),
    "monitor": kill_and_await_restart("monitor", _monitor_up),
    "nats": kill_and_await_restart("nats-server", _echo),
    "s3-buffer": kill_and_await_restart("weed-mini", _echo),
    "registry": kill_and_await_restart("registry", _registry_up),
    "launcher": kill_launcher,
    "destination": destination_away,
    "quota": quota_full,
}
# The short form in `make test`: one crash on each side of the buffer, and the full buffer.
SHORT = ("receiver", "uploader", "quota")
