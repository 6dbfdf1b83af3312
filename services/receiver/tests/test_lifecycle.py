"""One start/stop: what start() set up is undone by stop(), and by a start that fails."""

import socket
import threading

import pytest
from receiver_testing import receiver_settings_for

from edge_embedded.ports import port_is_free
from edge_receiver.main import start
from edge_testing.servers import wait_until


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "edge-loop"]


def test_stop_ends_the_event_loop_and_frees_the_port(edge_settings, tmp_path):
    settings = receiver_settings_for(edge_settings, tmp_path)
    before = loop_threads()
    receiver = start(settings)
    assert len(loop_threads()) == len(before) + 1 and not receiver.nc.is_closed
    receiver.stop(grace_s=1)
    assert receiver.nc.is_closed
    wait_until(lambda: loop_threads() == before, timeout_s=10, what="the loop's thread to end")
    assert port_is_free(settings.receiver_port, settings.receiver_host)


def test_a_failed_start_undoes_what_it_had_started(edge_settings, tmp_path):
    settings = receiver_settings_for(edge_settings, tmp_path)
    before = loop_threads()
    with socket.socket() as taken:  # the DICOM port is held by another program (no reuse)
        taken.bind((settings.receiver_host, settings.receiver_port))
        taken.listen()
        with pytest.raises(OSError):
            start(settings)
    # NATS was connected and the loop running by then: both stopped again.
    wait_until(lambda: loop_threads() == before, timeout_s=10, what="the loop's thread to end")
