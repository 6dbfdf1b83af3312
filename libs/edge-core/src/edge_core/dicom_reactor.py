"""pynetdicom's two reactor loops, woken by events instead of polling.

pynetdicom 3.0 runs two threads per association that poll: the DUL thread checks its socket
with a zero-timeout ``select`` and sleeps ``_run_loop_delay`` (1 ms) whenever nothing
happened, and the association thread sleeps 1 ms before every look at its queues. With an
association open that is ~2,000 wake-ups a second (CPU and GIL time taken from the threads
doing real work), and each hop of a C-STORE (PDU in, message to the handler, response out)
waits up to a millisecond for the other thread's next turn.

pynetdicom has no public setting for this (its source says "TODO: try and make this event
based"), so these subclasses keep its logic and replace only the sleeps:

- the DUL thread blocks in ``select`` on its socket *and* a wake-up socket, which
  ``send_pdu`` (a primitive to send) and ``kill_dul`` poke;
- the association thread blocks on an event that the DUL thread sets after every state
  machine action (a DIMSE message, a release or an abort became available) and when it ends.

Timers (ARTIM, network idle timeout) are still checked at least every ``WAIT_S``.
:func:`event_driven` swaps an association's classes in place before its threads start;
:class:`EventAE` does it for the associations it requests.
"""

import select
import socket
import ssl
import threading
import time
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import LOGGER as ASSOC_LOGGER
from pynetdicom.association import Association
from pynetdicom.dul import LOGGER as DUL_LOGGER
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.utils import make_target

# The longest either thread sleeps without an event: how late a timer can be noticed.
WAIT_S = 0.05


class EventDUL(DULServiceProvider):
    _wake_r: socket.socket
    _wake_w: socket.socket

    def _setup_wake(self) -> None:
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the pipe is full (a wake-up is pending anyway) or closed
            pass

    def send_pdu(self, primitive: Any) -> None:
        super().send_pdu(primitive)
        self._wake()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake()

    def stop_dul(self) -> bool:
        """As pynetdicom's, but wakes the reactor instead of waiting for its next turn."""
        if self.state_machine.current_state == "Sta1":
            self._kill_thread = True
            self._wake()
            while self.is_alive():
                time.sleep(0.001)
            return True
        return False

    def _wait(self) -> None:
        """Until the socket has data, a primitive is queued, or ``WAIT_S`` passes."""
        sock = self.socket.socket if self.socket is not None else None
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return  # decrypted data already buffered: select would not see it
        try:
            if sock is None or sock.fileno() < 0:
                raise ValueError("no socket")
            ready, _, _ = select.select([sock, self._wake_r], [], [], WAIT_S)
        except (OSError, ValueError):
            time.sleep(self._run_loop_delay)
            return
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:  # drained
                pass

    def run_reactor(self) -> None:
        """pynetdicom's ``DULServiceProvider.run_reactor`` (3.0), with ``_wait`` in place of
        the sleep, and the association woken after every state machine action."""
        self._idle_timer.start()
        assoc = self.assoc
        wake_assoc: threading.Event | None = getattr(assoc, "_wake", None)
        sleep = False
        try:
            while True:
                if not assoc._dul_ready.is_set():
                    assoc._dul_ready.set()
                    sleep = True

                if sleep:
                    self._wait()

                if self._kill_thread:
                    break

                if self.artim_timer.expired:
                    self.event_queue.put("Evt18")

                try:
                    if self._process_recv_primitive():
                        pass
                    elif self._is_transport_event():
                        self._idle_timer.restart()
                except Exception as exc:
                    DUL_LOGGER.error("Exception in DUL.run(), aborting association")
                    DUL_LOGGER.exception(exc)
                    abort_pdu = A_ABORT_RQ()
                    abort_pdu.source = 0x02
                    abort_pdu.reason_diagnostic = 0x00
                    assert self.socket is not None
                    self.socket.send(abort_pdu.encode())
                    assoc.is_aborted = True
                    assoc.is_established = False
                    assoc._kill = True
                    self._kill_thread = True
                    return

                if self.event_queue.empty():
                    sleep = True
                    continue

                self.state_machine.do_action(self.event_queue.get(block=False))
                sleep = False
                if wake_assoc is not None:
                    wake_assoc.set()
        finally:
            if wake_assoc is not None:
                wake_assoc.set()
            self._wake_r.close()
            self._wake_w.close()


class EventAssociation(Association):
    _wake: threading.Event

    def _run_reactor(self) -> None:
        """pynetdicom's ``Association._run_reactor`` (3.0), waiting for the DUL's wake-up
        instead of sleeping 1 ms per turn."""
        self._is_paused = False
        while not self._kill:
            # Cleared before looking at the queues: a wake-up set after this is seen next turn.
            self._wake.wait(WAIT_S)
            self._wake.clear()

            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, context_id)  # type: ignore[arg-type]
                self._wake.set()  # more may have queued meanwhile: look again at once

            if self.is_established and self.acse.is_release_requested():
                # Released before the answer goes out (pynetdicom answers first): the DUL
                # sends it at once now, and the peer's close of the connection must not be
                # seen (EVT_CONN_CLOSE) before the release.
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.acse.send_release(is_response=True)
                ASSOC_LOGGER.info("Association Released")
                self.kill()
                return

            if self.acse.is_aborted():
                log_msg = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    log_msg += " (A-P-ABORT)"
                ASSOC_LOGGER.info(log_msg)
                self.dul.receive_pdu(wait=False)
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                ASSOC_LOGGER.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()

                self.kill()
                return


def event_driven(assoc: Association) -> Association:
    """Make a new (not yet started) association and its DUL event-driven, in place."""
    assoc.__class__ = EventAssociation
    assoc._wake = threading.Event()  # type: ignore[attr-defined]
    dul = assoc.dul
    dul.__class__ = EventDUL
    dul._setup_wake()  # type: ignore[attr-defined]
    # The thread's target was bound to the original run_reactor when the DUL was made.
    dul._target = make_target(dul.run_reactor)  # type: ignore[attr-defined]
    return assoc


class EventAE(AE):
    """An AE whose requested associations are event-driven (``_create_socket`` is the one
    step of ``AE.associate`` between making the association and starting its threads)."""

    def _create_socket(self, assoc: Association, *args: Any, **kwargs: Any) -> Any:
        return super()._create_socket(event_driven(assoc), *args, **kwargs)
