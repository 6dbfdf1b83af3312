"""Bounds on what one association may make the receiver spool and parse, checked as P-DATA
arrives (pynetdicom would otherwise spool a C-STORE's whole dataset, however large, before
the handler could refuse it, and parse any number of empty PDVs).

- Every dataset byte is reserved against the buffer quota *before* pynetdicom writes it to the
  spool file. Once a reservation fails, the rest of that C-STORE is read and discarded (the
  file truncated) and the handler answers Out of Resources. Reading on (rather than aborting)
  keeps the association usable and gives the PACS a C-STORE status it retries on.
- A message carrying more than ``max_tiny_pdvs`` PDVs of under ``TINY_PDV_BYTES`` is a
  hostile or broken peer: the association is aborted (A-ABORT), since no C-STORE status can
  be sent before the message ends, and the peer decides when that is.

:func:`guard_association` (bound to EVT_REQUESTED) swaps the association's DIMSE provider
for :class:`GuardedDIMSE` before any P-DATA can arrive. It also takes two CPU shortcuts, each
byte-identical to pynetdicom: the spool file's File Meta (``spool_meta``) and the plain
C-STORE-RSP (``store_response``).
"""

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.events import Event

from edge_receiver.quota import BufferQuota
from edge_receiver.spool_meta import SpoolingMessage
from edge_receiver.store_response import send_store_rsp

log = logging.getLogger(__name__)

# A fragment this small is overhead, not data: real senders fill PDVs up to the PDU length,
# with at most a small command and a small last fragment per message.
TINY_PDV_BYTES = 128


class _Discard:
    """Stands in for the spool file of a refused C-STORE: takes the rest of its bytes and
    writes nothing (pynetdicom calls ``write``, ``file.flush``, ``close`` and reads ``name``)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.name = real.name
        self.file = self

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._real.close()


@dataclass
class SpoolState:
    reserved: int = 0
    discarded: bool = False


class GuardedDIMSE(DIMSEServiceProvider):
    quota: BufferQuota
    max_tiny_pdvs: int
    _spools: dict[str, SpoolState]  # spool path -> reservation, until the handler takes it
    _lock: threading.Lock
    _tiny: int
    _aborting: bool

    def receive_primitive(self, primitive: Any) -> None:
        """In the DUL thread, for every P-DATA primitive (one P-DATA-TF PDU)."""
        if self._aborting:
            return
        if self.message is None:
            self.message = SpoolingMessage()
        message = self.message
        pdvs = primitive.presentation_data_value_list
        self._tiny += sum(1 for _, data in pdvs if len(data) <= TINY_PDV_BYTES)
        if self._tiny > self.max_tiny_pdvs:
            log.warning(
                "aborting association from %s: %d PDVs of under %d bytes in one message",
                self.assoc.requestor.address,
                self._tiny,
                TINY_PDV_BYTES,
            )
            self._aborting = True
            self.dul.event_queue.put("Evt19")  # invalid PDU: A-ABORT, as pynetdicom does
            return
        spool = message._data_set_file
        if spool is not None and not isinstance(spool, _Discard):
            size = sum(len(data) - 1 for _, data in pdvs if not data[0] & 1)
            self._reserve(spool, size)
        super().receive_primitive(primitive)
        if self.message is None:  # the message is complete (queued for the handler)
            self._tiny = 0
        elif spool is None and (spool := message._data_set_file) is not None:
            # The command and the first data fragments came in one PDU: account for what
            # was written already (at most one PDU over).
            self._reserve(spool, spool.file.tell())

    def send_msg(self, primitive: Any, context_id: int) -> None:
        """A plain C-STORE-RSP without pynetdicom's Dataset round trips (store_response)."""
        if not send_store_rsp(self, primitive, context_id):
            super().send_msg(primitive, context_id)

    def _reserve(self, spool: Any, size: int) -> None:
        with self._lock:
            state = self._spools.setdefault(spool.name, SpoolState())
        if self.quota.reserve(size, state.reserved + size):
            state.reserved += size
            return
        log.warning(
            "C-STORE from %s does not fit in the buffer quota: discarding the rest",
            self.assoc.requestor.address,
        )
        state.discarded = True
        spool.file.truncate(0)
        self.message._data_set_file = _Discard(spool)  # type: ignore[union-attr]

    def take_spool(self, path: str) -> SpoolState:
        """The handler's: what was reserved for this spool file (released by the caller)."""
        with self._lock:
            return self._spools.pop(path, SpoolState())

    def release_all(self) -> None:
        """On connection close: the reservations of messages no handler will take."""
        with self._lock:
            spools, self._spools = self._spools, {}
        for path, state in spools.items():
            self.quota.release(state.reserved)
            try:  # an unfinished transfer's bytes need not wait for the stale-spool sweeper
                os.truncate(path, 0)
            except OSError:
                pass


def guard_association(event: Event, quota: BufferQuota, max_tiny_pdvs: int) -> None:
    """EVT_REQUESTED: before the association is accepted, so before any P-DATA."""
    dimse = event.assoc.dimse
    dimse.__class__ = GuardedDIMSE
    assert isinstance(dimse, GuardedDIMSE)
    dimse.quota = quota
    dimse.max_tiny_pdvs = max_tiny_pdvs
    dimse._spools = {}
    dimse._lock = threading.Lock()
    dimse._tiny = 0
    dimse._aborting = False


def release_spools(event: Event) -> None:
    """EVT_CONN_CLOSE."""
    dimse = event.assoc.dimse
    if isinstance(dimse, GuardedDIMSE):
        dimse.release_all()
