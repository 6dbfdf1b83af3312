"""A PACS, as far as the fault harness needs one: it sends a series with pynetdicom over one
association at a time, records the answer to every C-STORE, and sends again whatever was
not answered Success (a refusal, an abort, a refused connection), as a PACS's retry queue
does. So at the end it knows exactly which SOP Instance UIDs were answered Success."""

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import SecondaryCaptureImageStorage

SUCCESS = 0x0000
# A PACS waits a little before it sends a refused instance again, or calls again.
RETRY_PAUSE_S = 0.2


@dataclass
class Answers:
    """What the PACS saw, per SOP Instance UID."""

    success: set[str] = field(default_factory=set)
    # Every non-Success answer: a DIMSE status, "abort" (the association died under the
    # C-STORE: a delivery cut), or "no association" (refused or no one listening).
    refusals: Counter[int | str] = field(default_factory=Counter)
    associations: int = 0


class PacsSender:
    """Sends ``datasets`` in a thread until each one was answered Success (or ``stop()``)."""

    def __init__(self, port: int, called: str, datasets: list[Dataset], pace_s: float = 0.0):
        self.port, self.called, self.pace_s = port, called, pace_s
        self.datasets = datasets
        self.answers = Answers()
        self._queue = deque(datasets)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"pacs-{called}", daemon=True)
        self.ae = AE(ae_title="HOSPITALPACS")
        self.ae.add_requested_context(SecondaryCaptureImageStorage)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = 30

    def start(self) -> "PacsSender":
        self._thread.start()
        return self

    def successes(self) -> int:
        with self._lock:
            return len(self.answers.success)

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout_s: float) -> bool:
        """True once every instance was answered Success; stops trying after ``timeout_s``."""
        self._thread.join(timeout_s)
        self._stop.set()
        self._thread.join(60)
        return not self._queue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while self._queue and not self._stop.is_set():
            assoc = self.ae.associate("127.0.0.1", self.port, ae_title=self.called)
            if not assoc.is_established:
                self._refused("no association")
                continue
            self.answers.associations += 1
            try:
                self._send_on(assoc)
            finally:
                if assoc.is_established:
                    assoc.release()

    def _send_on(self, assoc) -> None:
        while self._queue and not self._stop.is_set() and assoc.is_established:
            ds = self._queue[0]
            try:
                rsp = assoc.send_c_store(ds)
                status = getattr(rsp, "Status", None)
            except Exception:  # the association broke under the C-STORE
                status = None
            self._queue.popleft()
            if status == SUCCESS:
                with self._lock:
                    self.answers.success.add(str(ds.SOPInstanceUID))
                if self.pace_s:
                    self._stop.wait(self.pace_s)
                continue
            self._queue.append(ds)  # sent again later, like a PACS's retry queue
            self._refused("abort" if status is None else int(status))
            if status is None:
                return

    def _refused(self, answer: int | str) -> None:
        with self._lock:
            self.answers.refusals[answer] += 1
        self._stop.wait(RETRY_PAUSE_S)
