"""Association handlers: route each request to its datashare or reject it in negotiation,
and publish ``association.*`` events.

Handlers are plain functions bound with their dependencies, the way pynetdicom binds
``(evt.EVT_..., handler, [deps])``.
"""

import logging
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field

from pynetdicom.association import Association
from pynetdicom.events import Event

from edge_core.datashare_table import DatashareTable
from edge_core.events import (
    AssociationAborted,
    AssociationAbortedEvent,
    AssociationClosed,
    AssociationClosedEvent,
    AssociationOpened,
    AssociationOpenedEvent,
    AssociationRef,
    AssociationRejected,
    AssociationRejectedEvent,
)
from edge_receiver.bridge import Bus
from edge_receiver.negotiation import contexts_for_request
from edge_receiver.routing import REASON_TEXT, Rejection, resolve

log = logging.getLogger(__name__)


@dataclass
class Session:
    """One accepted association: its datashare and what it has sent so far (only its own
    thread updates it)."""

    datashare: str
    ref: AssociationRef
    started: float = field(default_factory=time.monotonic)
    instances: int = 0
    bytes: int = 0
    failures: int = 0


class Sessions:
    """The accepted associations and their sessions: admitted here (within the limit of
    association slots), read by the C-STORE handler, and ended here by exactly one of
    released, aborted or connection closed. Weakly keyed: pynetdicom owns the associations."""

    def __init__(self, max_associations: int) -> None:
        # Accepted associations at once; pending connections never count.
        self.max_associations = max_associations
        self._by_association = weakref.WeakKeyDictionary[Association, Session]()
        self._lock = threading.Lock()

    def admit(self, assoc: Association, session: Session) -> bool:
        """Take a slot for ``assoc``; False when every slot is taken."""
        with self._lock:
            if len(self._by_association) >= self.max_associations:
                return False
            self._by_association[assoc] = session
            return True

    def get(self, assoc: Association) -> Session | None:
        return self._by_association.get(assoc)

    def end(self, assoc: Association) -> Session | None:
        """Free the slot; the session, to the one caller that ends it (None to the others)."""
        with self._lock:
            return self._by_association.pop(assoc, None)

    def __len__(self) -> int:
        return len(self._by_association)


@dataclass(frozen=True)
class AssociationDeps:
    table: DatashareTable
    bus: Bus
    sessions: Sessions
    receiver_ae_title: str
    receiver_name: str


def handle_requested(event: Event, deps: AssociationDeps) -> None:
    """EVT_REQUESTED: accept into a datashare, or reject (A-ASSOCIATE-RJ)."""
    assoc = event.assoc
    request = assoc.requestor.primitive
    assert request is not None  # EVT_REQUESTED fires once the A-ASSOCIATE-RQ is in
    calling_ae = str(request.calling_ae_title).strip()
    called_ae = str(request.called_ae_title).strip()
    peer_host, peer_port = assoc.requestor.address, assoc.requestor.port
    found = resolve(deps.table.all(), calling_ae, called_ae, peer_host, deps.receiver_ae_title)
    if isinstance(found, Rejection):
        log.warning(
            "rejecting association from %s:%s (calling %r, called %r): %s",
            peer_host,
            peer_port,
            calling_ae,
            called_ae,
            found.text,
        )
        deps.bus.announce(
            AssociationRejectedEvent(
                data=AssociationRejected(
                    calling_ae=calling_ae,
                    called_ae=called_ae,
                    peer_host=peer_host,
                    peer_port=peer_port,
                    reason=found.reason,
                    reason_text=found.text,
                )
            )
        )
        reject(assoc, result=1, source=1, reason=found.reason)
        return
    # Contexts ordered for this proposer, so that it never has to convert its data.
    assoc.acceptor.supported_contexts = contexts_for_request(
        request.presentation_context_definition_list
    )
    session = Session(
        datashare=found.id,
        ref=AssociationRef(
            association_id=uuid.uuid4().hex,
            calling_ae=calling_ae,
            called_ae=called_ae,
            peer_host=peer_host,
            peer_port=peer_port,
        ),
    )
    if not deps.sessions.admit(assoc, session):
        reason_text = "local limit exceeded (too many associations)"
        log.warning("rejecting association from %s:%s: %s", peer_host, peer_port, reason_text)
        deps.bus.announce(
            AssociationRejectedEvent(
                data=AssociationRejected(
                    **session.ref.model_dump(exclude={"association_id"}),
                    result=2,
                    source=3,
                    reason=2,
                    reason_text=reason_text,
                )
            )
        )
        reject(assoc, result=2, source=3, reason=2)  # rejected-transient: the PACS retries


def reject(assoc: Association, result: int, source: int, reason: int) -> None:
    """Send A-ASSOCIATE-RJ and wait until it has left: ``kill`` returns once the state
    machine is idle (the peer closed the connection after reading the reject, or the ARTIM
    timer expired). Without the wait, pynetdicom closes the socket as soon as the handler
    returns and the peer often sees the connection drop instead of the reject."""
    assoc.acse.send_reject(result, source, reason)
    assoc.kill()


def handle_rejected(event: Event, deps: AssociationDeps) -> None:
    """EVT_REJECTED: pynetdicom's own rejections (e.g. too many associations)."""
    assoc = event.assoc
    session = deps.sessions.end(assoc)
    rejection = assoc.acceptor.primitive
    if session is None or rejection is None:
        return
    reason_text = (
        "local limit exceeded (too many associations)"
        if (rejection.result_source, rejection.diagnostic) == (3, 2)
        else REASON_TEXT.get(rejection.diagnostic or 0, "rejected")
    )
    log.warning("rejected association from %s: %s", session.ref.peer_host, reason_text)
    deps.bus.announce(
        AssociationRejectedEvent(
            data=AssociationRejected(
                calling_ae=session.ref.calling_ae,
                called_ae=session.ref.called_ae,
                peer_host=session.ref.peer_host,
                peer_port=session.ref.peer_port,
                result=rejection.result or 1,
                source=rejection.result_source or 1,
                reason=rejection.diagnostic or 1,
                reason_text=reason_text,
            )
        )
    )


def handle_established(event: Event, deps: AssociationDeps) -> None:
    session = deps.sessions.get(event.assoc)
    if session is None:
        return
    contexts = [
        f"{cx.abstract_syntax}/{cx.transfer_syntax[0]}" for cx in event.assoc.accepted_contexts
    ]
    log.info(
        "association %s opened for datashare %s from %s (%s → %s)",
        session.ref.association_id,
        session.datashare,
        session.ref.peer_host,
        session.ref.calling_ae,
        session.ref.called_ae,
    )
    deps.bus.announce(
        AssociationOpenedEvent(
            datashare=session.datashare,
            data=AssociationOpened(
                **session.ref.model_dump(), contexts=contexts, receiver=deps.receiver_name
            ),
        )
    )


def _closed(session: Session) -> AssociationClosed:
    return AssociationClosed(
        **session.ref.model_dump(),
        instances=session.instances,
        bytes=session.bytes,
        failures=session.failures,
        duration_s=round(time.monotonic() - session.started, 3),
    )


def handle_released(event: Event, deps: AssociationDeps) -> None:
    # Popping the session is what makes exactly one of released/aborted/closed report it.
    session = deps.sessions.end(event.assoc)
    if session is None:
        return
    log.info(
        "association %s released: %d instances, %d bytes, %d failures",
        session.ref.association_id,
        session.instances,
        session.bytes,
        session.failures,
    )
    deps.bus.announce(AssociationClosedEvent(datashare=session.datashare, data=_closed(session)))


def _aborted(assoc: Association, deps: AssociationDeps, reason: str) -> None:
    session = deps.sessions.end(assoc)
    if session is None:
        return
    log.warning(
        "association %s aborted (%s) after %d instances",
        session.ref.association_id,
        reason,
        session.instances,
    )
    deps.bus.announce(
        AssociationAbortedEvent(
            datashare=session.datashare,
            data=AssociationAborted(**_closed(session).model_dump(), reason=reason),
        )
    )


def handle_aborted(event: Event, deps: AssociationDeps) -> None:
    _aborted(event.assoc, deps, "aborted")


def handle_connection_closed(event: Event, deps: AssociationDeps) -> None:
    """EVT_CONN_CLOSE: an accepted association whose connection ended without a release or
    abort (a dropped connection or a timeout)."""
    _aborted(event.assoc, deps, "connection closed")


def handle_association_end(assoc: Association, deps: AssociationDeps) -> None:
    """When the association's thread ends, whatever the path (server.py calls it): one that
    neither released nor aborted nor saw its connection close is a ghost, e.g. pynetdicom's
    reader thread died on a P-DATA for an unnegotiated context or an undecodable command
    (no EVT_ABORTED then); it is reported aborted so that nothing counts it active."""
    _aborted(assoc, deps, "protocol error: the association ended without release or abort")
