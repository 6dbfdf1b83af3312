"""The health probe's C-ECHO: answered for a datashare's AE title, not for an unknown one
(refused in negotiation) nor when nothing listens."""

from receiver_testing import put_datashares

from edge_core.datashares import Datashare
from edge_embedded.ports import free_ports
from edge_receiver.probe import echo


def test_probe_echoes_a_datashare(receiver, receiver_settings):
    port = receiver.server.server_address[1]
    put_datashares(receiver_settings, Datashare(id="PROBE", ae_title="PROBE"), port=port)
    assert echo(port, "PROBE")
    assert not echo(port, "NOSUCH")
    assert not echo(free_ports(1)[0], "PROBE", timeout_s=1)
