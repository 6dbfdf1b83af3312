"""The DICOM listener: pynetdicom's threaded association server, hardened.

- The TLS handshake runs in the connection's own thread with a timeout, not in the accept
  thread (where pynetdicom does it), so a client that never handshakes holds up no one.
- The length a PDU declares is checked before anything is read: the first PDU must be an
  A-ASSOCIATE-RQ of sane length (garbage and absurd lengths are dropped before an
  association even exists), and later PDUs may not exceed our maximum PDU length plus
  slack (pynetdicom would otherwise read whatever length a peer declares).
- Every socket read is bounded by the network timeout, so a stalled peer cannot pin a thread.
"""

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from pynetdicom import AE
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

    def recv(self, nr_bytes: int) -> bytearray:
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
        while received < nr_bytes:
            count = self.socket.recv_into(view[received:])
            if not count:  # closed: return what came, as pynetdicom does
                return buffer[:received]
            received += count
        return buffer

    def _shutdown_socket_only(self) -> None:
        if self.socket is not None:
            try:
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._is_connected = False


def _peek(sock: socket.socket, count: int, timeout_s: float | None) -> bytes:
    """The first ``count`` bytes without consuming them (fewer if the peer closes first).
    The socket has a timeout, so it is non-blocking underneath and a peek returns what has
    arrived so far: poll briefly for the rest, which is rare (a header comes in one write)."""
    deadline = time.monotonic() + (timeout_s or 60.0)
    while True:
        data = sock.recv(count, socket.MSG_PEEK)
        if len(data) >= count or not data:
            return data
        if time.monotonic() > deadline:
            raise TimeoutError("incomplete PDU header")
        time.sleep(0.01)


class EdgeRequestHandler(RequestHandler):
    server: "EdgeServer"

    def handle(self) -> None:
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
                return
            self.request = sock
        elif not self._first_pdu_is_sane(sock):
            return
        super().handle()

    def _first_pdu_is_sane(self, sock: socket.socket) -> bool:
        """Peek at the first PDU header without consuming it (plain TCP only: a TLS socket
        cannot peek; there the capped socket guards the length)."""
        try:
            header = _peek(sock, 6, self.server.network_timeout)
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
        # Swapping the class keeps everything pynetdicom set up, with the capped recv.
        sock = assoc.dul.socket
        sock.__class__ = CappedAssociationSocket
        sock.pdu_length_cap = self.server.pdu_length_cap  # type: ignore[union-attr]
        assoc = event_driven(assoc)
        # pynetdicom fires no event when its DUL thread dies of an exception (the association
        # thread just stops): the end of the thread itself is the one thing that always comes.
        run, on_end = assoc.run_reactor, self.server.on_association_end

        def run_then_account() -> None:
            try:
                run()
            finally:
                on_end(assoc)

        assoc._target = make_target(run_then_account)  # type: ignore[attr-defined]
        return assoc


class EdgeServer(ThreadedAssociationServer):
    daemon_threads = True
    tls_context: ssl.SSLContext | None = None
    network_timeout: float | None = None
    pdu_length_cap: int = 0
    max_connections: int = 128
    on_association_end: Callable[[Association], None] = staticmethod(lambda assoc: None)
    _connections = 0
    _connections_lock = threading.Lock()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """In the accept thread: every connection holds a thread until it becomes an
        association or times out, so idle or hostile connections are capped too."""
        with self._connections_lock:
            if self._connections >= self.max_connections:
                log.warning(
                    "refusing connection from %s: %d connections open",
                    client_address,
                    self._connections,
                )
                return False
            self._connections += 1
        return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections -= 1

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
    ae.maximum_associations = settings.receiver_max_associations
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
    server = EdgeServer(
        ae,
        (settings.receiver_host, settings.receiver_port),
        ae.ae_title,
        # No fixed contexts: each request gets its own in EVT_REQUESTED
        # (negotiation.contexts_for_request). pynetdicom deep-copies these for every
        # association, which for every storage class in every syntax cost ~90 ms of CPU.
        [],
        evt_handlers=handlers,  # type: ignore[arg-type]
        request_handler=EdgeRequestHandler,
    )
    server.tls_context = tls_context(settings)
    server.network_timeout = settings.receiver_network_timeout_s
    server.pdu_length_cap = settings.pdu_length_cap
    server.max_connections = settings.receiver_max_connections
    server.on_association_end = on_association_end  # type: ignore[method-assign,assignment]
    ae._servers.append(server)
    threading.Thread(target=server.serve_forever, name="edge-acceptor", daemon=True).start()
    return server
