"""The DICOM listener: pynetdicom's threaded association server, hardened.

- The TLS handshake runs in the connection's own thread with a timeout, not in the accept
  thread (where pynetdicom does it), so a client that never handshakes holds up no one.
- The length a PDU declares is checked before anything is read: the first PDU must be an
  A-ASSOCIATE-RQ of sane length (garbage and absurd lengths are dropped before an
  association even exists), and later PDUs may not exceed our maximum PDU length plus
  slack (pynetdicom would otherwise read whatever length a peer declares).
- Every socket read is bounded by the network timeout, so a stalled peer cannot pin a thread,
  and every PDU must arrive whole within the PDU deadline from its first byte, so neither
  can one that trickles a byte at a time.
- Connections that are not yet an accepted association ("pending") are limited in all and
  per source address; over a limit the *oldest* pending connection gives way, not the new
  one: a PACS's association request takes milliseconds, so the oldest pending connections
  are the idle and the trickling ones. Association slots (``receiver_max_associations``)
  are counted in ``associations.py`` over accepted associations only, so pending
  connections can never use them up.
"""

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer
from pynetdicom.utils import make_target

from edge_core.dicom_reactor import event_driven
from edge_receiver.config import ReceiverSettings

log = logging.getLogger(__name__)

A_ASSOCIATE_RQ = 0x01
# A-ABORT, source service-provider, reason not specified: the answer to garbage.
A_ABORT_PDU = bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 0])


class CappedAssociationSocket(AssociationSocket):
    """Refuses to read a PDU longer than ``pdu_length_cap``: pynetdicom reads the 6-byte
    header, then asks for exactly the declared length. Reads into one buffer of that length
    (pynetdicom reads 4 KiB at a time and appends, which costs CPU on large transfers)."""

    pdu_length_cap: int = 0
    pdu_deadline_s: float = 30.0
    # pynetdicom reads each PDU as a 6-byte header, then its body: a read outside a PDU is a
    # header, and starts the PDU's deadline (the first PDU's was set from its first byte).
    _in_pdu = False
    _deadline = 0.0
    _first_deadline: float | None = None

    def recv(self, nr_bytes: int) -> bytearray:
        if not self._in_pdu:
            self._deadline = self._first_deadline or time.monotonic() + self.pdu_deadline_s
            self._first_deadline = None
        self._in_pdu = not self._in_pdu
        if nr_bytes > self.pdu_length_cap:
            log.warning(
                "closing connection from %s: a PDU declares %d bytes (limit %d)",
                self.assoc.requestor.address,
                nr_bytes,
                self.pdu_length_cap,
            )
            # A short read makes pynetdicom treat the connection as closed (one Evt17); no
            # further reads once it is marked disconnected.
            self._shutdown_socket_only()
            return bytearray()
        assert self.socket is not None
        buffer = bytearray(nr_bytes)
        view, received = memoryview(buffer), 0
        idle_timeout = self.socket.gettimeout()
        try:
            while received < nr_bytes:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    log.warning(
                        "closing connection from %s: a PDU did not arrive within %.0f s",
                        self.assoc.requestor.address,
                        self.pdu_deadline_s,
                    )
                    self._shutdown_socket_only()
                    return bytearray()
                if idle_timeout is None or left < idle_timeout:
                    self.socket.settimeout(left)
                try:
                    count = self.socket.recv_into(view[received:])
                except TimeoutError:
                    if time.monotonic() < self._deadline:
                        raise  # the idle timeout: pynetdicom handles it
                    continue  # the deadline: closed above
                if not count:  # closed: return what came, as pynetdicom does
                    return buffer[:received]
                received += count
        finally:
            if self.socket is not None and self.socket.gettimeout() != idle_timeout:
                self.socket.settimeout(idle_timeout)
        return buffer

    def _shutdown_socket_only(self) -> None:
        if self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._is_connected = False


def _peek(sock: socket.socket, count: int, deadline_s: float) -> tuple[bytes, float]:
    """The first ``count`` bytes without consuming them (fewer if the peer closes first), and
    when the first came. The wait for the first byte is bounded by the socket's (idle)
    timeout; the rest must come within ``deadline_s`` of it. The socket has a timeout, so it
    is non-blocking underneath and a peek returns what has arrived so far: poll briefly for
    the rest, which is rare (a header comes in one write)."""
    data = sock.recv(count, socket.MSG_PEEK)
    first_byte_at = time.monotonic()
    while len(data) < count and data and not _peer_closed(sock):
        if time.monotonic() > first_byte_at + deadline_s:
            raise TimeoutError("incomplete PDU header")
        time.sleep(0.01)
        data = sock.recv(count, socket.MSG_PEEK)
    return data, first_byte_at


_TCP_CLOSE_WAIT = 8  # Linux's tcp_info state once the peer has sent its FIN


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the peer has closed its side. A peek keeps returning the bytes not yet read,
    so it cannot tell: without this, a peer that sent part of a header and closed held a
    thread until the PDU deadline (found by fuzzing)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _TCP_CLOSE_WAIT
    except (AttributeError, OSError):  # no TCP_INFO here: the deadline still bounds it
        return False


class EdgeRequestHandler(RequestHandler):
    server: "EdgeServer"
    _first_byte_at: float | None = None

    def handle(self) -> None:
        started = False
        try:
            started = self._start_association()
        finally:
            if not started:  # else it stays pending until accepted or ended
                self.server.pending.remove(tuple(self.client_address[:2]))

    def _start_association(self) -> bool:
        sock: socket.socket = self.request
        peer = self.client_address
        sock.settimeout(self.server.network_timeout)
        # Each C-STORE-RSP is one small write: without this, Nagle and the peer's delayed ACK
        # can hold it back ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.tls_context is not None:
            try:
                sock = self.server.tls_context.wrap_socket(sock, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                log.warning("TLS handshake with %s failed: %s", peer, exc)
                return False
            self.request = sock
        elif not self._first_pdu_is_sane(sock):
            return False
        super().handle()
        return True

    def _first_pdu_is_sane(self, sock: socket.socket) -> bool:
        """Peek at the first PDU header without consuming it (plain TCP only: a TLS socket
        cannot peek; there the capped socket guards the length)."""
        try:
            header, self._first_byte_at = _peek(sock, 6, self.server.pdu_deadline_s)
        except OSError as exc:
            log.info("connection from %s closed before a PDU: %s", self.client_address, exc)
            return False
        if len(header) < 6:
            log.info("connection from %s closed before a PDU", self.client_address)
            return False
        pdu_type, _, length = struct.unpack(">BBL", header)
        if pdu_type == A_ASSOCIATE_RQ and length <= self.server.pdu_length_cap:
            return True
        log.warning(
            "dropping connection from %s: first PDU is not a sane A-ASSOCIATE-RQ "
            "(type 0x%02X, declared length %d)",
            self.client_address,
            pdu_type,
            length,
        )
        try:
            sock.sendall(A_ABORT_PDU)
            sock.shutdown(socket.SHUT_WR)
            # Discard what the peer already sent (a little), so that closing does not reset
            # the connection before the A-ABORT is read.
            sock.settimeout(0.5)
            for _ in range(16):
                if not sock.recv(65536):
                    break
        except OSError:
            pass
        return False

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        # Swapping the class keeps everything pynetdicom set up, with the capped recv. (No
        # public way: RequestHandler._create_association builds a plain AssociationSocket.)
        sock = assoc.dul.socket
        sock.__class__ = CappedAssociationSocket
        sock.pdu_length_cap = self.server.pdu_length_cap  # type: ignore[union-attr]
        sock.pdu_deadline_s = self.server.pdu_deadline_s  # type: ignore[union-attr]
        if self._first_byte_at is not None:
            sock._first_deadline = self._first_byte_at + self.server.pdu_deadline_s  # type: ignore[union-attr]
        assoc = event_driven(assoc)
        # pynetdicom fires no event when its DUL thread dies of an exception (the association
        # thread just stops): the end of the thread itself is the one thing that always comes.
        run, server, address = assoc.run_reactor, self.server, tuple(self.client_address[:2])

        def run_then_account() -> None:
            try:
                run()
            finally:
                server.pending.remove(address)
                server.on_association_end(assoc)

        # Private, for want of a public hook at the end of an association's thread.
        assoc._target = make_target(run_then_account)  # type: ignore[attr-defined]
        return assoc


class PendingConnections:
    """Connections that are not (yet) an accepted association, oldest first, and their
    sockets. Over the limit in all or from one address, the oldest gives way: its socket is
    shut down, which ends the read its thread waits in."""

    def __init__(self, limit: int, per_host: int) -> None:
        self.limit, self.per_host = limit, per_host
        self._lock = threading.Lock()
        self._sockets: dict[tuple[Any, ...], socket.socket] = {}  # insertion order: age

    def add(self, address: tuple[Any, ...], sock: socket.socket) -> None:
        with self._lock:
            self._sockets[address] = sock
            same_host = [a for a in self._sockets if a[0] == address[0]]
            victims = same_host[: max(0, len(same_host) - self.per_host)]
            victims += list(self._sockets)[: max(0, len(self._sockets) - self.limit)]
            closing = {a: self._sockets.pop(a) for a in victims if a in self._sockets}
        for victim, victim_sock in closing.items():
            log.warning("closing pending connection from %s: the oldest over the limit", victim)
            try:
                victim_sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def remove(self, address: tuple[Any, ...]) -> None:
        with self._lock:
            self._sockets.pop(address, None)

    def __len__(self) -> int:
        return len(self._sockets)


def handle_established(event: Any, pending: PendingConnections) -> None:
    """EVT_ESTABLISHED: no longer pending (association slots are counted elsewhere)."""
    assoc = event.assoc
    pending.remove((assoc.requestor.address, assoc.requestor.port))


class EdgeServer(ThreadedAssociationServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: beyond it the kernel holds new connections
    # back for seconds (SYN-ACK retransmits), PACS and hostile ones alike, before we see them.
    request_queue_size = 1024
    tls_context: ssl.SSLContext | None = None
    network_timeout: float | None = None
    pdu_length_cap: int = 0
    pdu_deadline_s: float = 30.0
    pending: PendingConnections
    on_association_end: Callable[[Association], None] = staticmethod(lambda assoc: None)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """In the accept thread: every connection holds a thread until it becomes an
        association or ends, so pending ones are capped too."""
        self.pending.add(tuple(client_address[:2]), request)
        return True

    def server_bind(self) -> None:
        # Several receiver processes may listen on one port; the kernel spreads connections
        # across them (they share nothing but NATS and the buffer).
        if self.socket is not None:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def tls_context(settings: ReceiverSettings) -> ssl.SSLContext | None:
    if not settings.tls_enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.receiver_tls_cert), str(settings.receiver_tls_key))
    if settings.receiver_tls_ca is not None:
        context.load_verify_locations(str(settings.receiver_tls_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def make_ae(settings: ReceiverSettings) -> AE:
    ae = AE(ae_title=settings.receiver_ae_title)
    # Association slots are counted over accepted associations (associations.py); pynetdicom
    # counts every connection that may become one, so its own limit only bounds threads.
    ae.maximum_associations = settings.receiver_max_associations + settings.receiver_max_connections
    ae.maximum_pdu_size = settings.receiver_max_pdu_bytes
    ae.acse_timeout = settings.receiver_acse_timeout_s
    ae.dimse_timeout = settings.receiver_dimse_timeout_s
    ae.network_timeout = settings.receiver_network_timeout_s
    # Routing is ours (EVT_REQUESTED): any called AE title may reach the handler.
    ae.require_called_aet = False
    return ae


def start_server(
    ae: AE,
    settings: ReceiverSettings,
    handlers: list[tuple[Any, Callable[..., Any], list[Any]]],
    on_association_end: Callable[[Association], None],
) -> EdgeServer:
    pending = PendingConnections(
        settings.receiver_max_connections, settings.receiver_max_connections_per_host
    )
    server = EdgeServer(
        ae,
        (settings.receiver_host, settings.receiver_port),
        ae.ae_title,
        # No fixed contexts: each request gets its own in EVT_REQUESTED
        # (negotiation.contexts_for_request). pynetdicom deep-copies these for every
        # association, which for every storage class in every syntax cost ~90 ms of CPU.
        [],
        evt_handlers=[*handlers, (evt.EVT_ESTABLISHED, handle_established, [pending])],
        request_handler=EdgeRequestHandler,
    )
    server.pending = pending
    server.tls_context = tls_context(settings)
    server.network_timeout = settings.receiver_network_timeout_s
    server.pdu_length_cap = settings.pdu_length_cap
    server.pdu_deadline_s = settings.receiver_pdu_deadline_s
    server.on_association_end = on_association_end
    # Private, for want of a public way (pynetdicom 3.0): the server's shutdown() removes it
    # from ae._servers, where only AE.start_server adds it, and neither start_server nor
    # make_server can be used (they take no request handler, or replace an empty context
    # list by the AE's supported contexts).
    ae._servers.append(server)
    threading.Thread(target=server.serve_forever, name="edge-acceptor", daemon=True).start()
    return server
