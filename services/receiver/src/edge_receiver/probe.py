"""``edge-receiver-probe [CALLED_AE]``: a C-ECHO to this host's receiver, for a container's
health check. Exit 0 when the echo is answered Success; 1 otherwise. The called AE title
(argument, or ``EDGE_PROBE_AE_TITLE``) must be an enabled datashare's (a probe datashare
kept for the purpose): an unknown one is refused, and every refusal is an event that staff
see among the monitor's rejections."""

import os
import sys

from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from edge_receiver.config import ReceiverSettings


def echo(port: int, called: str, timeout_s: float = 5.0) -> bool:
    ae = AE(ae_title="EDGE-PROBE")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


def main() -> None:
    settings = ReceiverSettings()
    called = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("EDGE_PROBE_AE_TITLE", "")
    if not called:
        sys.exit("edge-receiver-probe: give the called AE title of a probe datashare")
    sys.exit(0 if echo(settings.receiver_port, called) else 1)
