"""Peers that trickle bytes: each PDU has a deadline from its first byte, pending connections
give way oldest first, and association slots count accepted associations only, so a PACS
gets through whatever the tricklers do."""

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from receiver_testing import put_datashares, read_events, receiver_settings_for
from test_hardening import encoded_association_request, established_raw_association, p_data

from edge_core.datashares import Datashare
from edge_receiver.main import start
from edge_testing.dcmtk import storescu
from edge_testing.dicom_data import write_small_series
from edge_testing.servers import wait_until

TRICKLERS = 100
TRICKLE_EVERY_S = 1.0


class Tricklers:
    """``count`` raw connections that each send a sane A-ASSOCIATE-RQ header, then one more
    byte of the request every ``TRICKLE_EVERY_S``; records when the receiver closed each."""

    def __init__(self, port: int, count: int) -> None:
        request = encoded_association_request("DS1")
        self.header, self.body = request[:6], request[6:]
        self.started = time.monotonic()
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.closed_at: dict[socket.socket, float] = {}
        self._stop = threading.Event()
        for sock in self.socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(self.header)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sent, next_byte_at = 0, time.monotonic() + TRICKLE_EVERY_S
        while not self._stop.is_set() and len(self.closed_at) < len(self.socks):
            open_ = [s for s in self.socks if s not in self.closed_at]
            readable, _, _ = select.select(open_, [], [], 0.05)
            for sock in readable:  # anything readable here is the receiver closing
                try:
                    if not sock.recv(4096):
                        self.closed_at[sock] = time.monotonic()
                except OSError:
                    self.closed_at[sock] = time.monotonic()
            if time.monotonic() >= next_byte_at and sent < len(self.body):
                for sock in open_:
                    try:
                        sock.send(self.body[sent : sent + 1])
                    except OSError:
                        self.closed_at.setdefault(sock, time.monotonic())
                sent, next_byte_at = sent + 1, next_byte_at + TRICKLE_EVERY_S

    def open_count(self) -> int:
        return len(self.socks) - len(self.closed_at)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()


@contextmanager
def receiver_with(edge_settings, tmp_path, **overrides) -> Iterator:
    settings = receiver_settings_for(edge_settings, tmp_path / "r", **overrides)
    receiver = start(settings)
    try:
        put_datashares(settings, Datashare(id="DS1", ae_title="DS1"), port=receiver.port)
        yield receiver, settings
    finally:
        receiver.stop(grace_s=2)


def store_while_trickled(receiver, tmp_path) -> tuple[Tricklers, float]:
    tricklers = Tricklers(receiver.port, TRICKLERS)
    files = write_small_series(tmp_path / "sc", 2)
    started = time.monotonic()
    sent = storescu(receiver.port, "DS1", files)
    took = time.monotonic() - started
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert tricklers.open_count() > 0, "the tricklers must still be there while it sends"
    return tricklers, took


def test_tricklers_are_closed_by_the_pdu_deadline_and_a_pacs_gets_through(edge_settings, tmp_path):
    """Limits wide enough for every trickler: the deadline closes them, and their pending
    requests take no association slot meanwhile."""
    deadline_s = 6.0
    with receiver_with(
        edge_settings,
        tmp_path,
        receiver_pdu_deadline_s=deadline_s,
        receiver_max_connections=2 * TRICKLERS,
        receiver_max_connections_per_host=2 * TRICKLERS,
    ) as (receiver, _):
        tricklers, took = store_while_trickled(receiver, tmp_path)
        try:
            assert took < deadline_s  # served now, not once the tricklers are gone
            wait_until(lambda: tricklers.open_count() == 0, timeout_s=deadline_s + 15,
                       what="every trickler closed")  # fmt: skip
            # Never before its deadline (a byte a second kept every idle timer alive).
            assert min(tricklers.closed_at.values()) - tricklers.started >= deadline_s - 0.5
            assert max(tricklers.closed_at.values()) - tricklers.started < deadline_s + 10
        finally:
            tricklers.close()


def test_the_oldest_pending_connections_give_way_to_a_pacs(edge_settings, tmp_path):
    """Default connection limits, a deadline longer than the test: the per-address limit
    closes the oldest tricklers, never the newcomer."""
    with receiver_with(edge_settings, tmp_path, receiver_pdu_deadline_s=120) as (receiver, s):
        tricklers, took = store_while_trickled(receiver, tmp_path)
        try:
            assert took < 20
            per_host = s.receiver_max_connections_per_host
            wait_until(lambda: tricklers.open_count() <= per_host, what="the oldest closed")
            # The newest stay (the ones the PACS's own connections did not push out).
            assert tricklers.socks[-1] not in tricklers.closed_at
        finally:
            tricklers.close()


def test_a_pdata_trickled_on_an_association_is_cut_at_the_deadline(edge_settings, tmp_path):
    with receiver_with(edge_settings, tmp_path, receiver_pdu_deadline_s=3) as (receiver, s):
        sock = established_raw_association(receiver.port, "DS1")
        port = sock.getsockname()[1]
        pdu = p_data(1, b"\x00" * 64)
        started = time.monotonic()
        try:
            for byte in pdu:
                sock.sendall(bytes([byte]))
                readable, _, _ = select.select([sock], [], [], 1.0)
                if readable and not sock.recv(4096):
                    break
            else:
                pytest.fail("the receiver read a trickled PDU for 64 s")
            assert time.monotonic() - started < 3 + 5
        finally:
            sock.close()
        wait_until(
            lambda: [e for e in read_events(s, "association.aborted") if e.data.peer_port == port],
            what="association.aborted",
        )
