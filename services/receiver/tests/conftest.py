"""Receiver test fixtures: a receiver in this process, pointed at the test NATS and S3."""

import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import _config

from edge_core.settings import EdgeSettings
from edge_receiver.config import ReceiverSettings
from edge_receiver.main import Receiver, start

# The tests import their helpers module from this directory.
sys.path.insert(0, str(Path(__file__).parent))
from receiver_testing import receiver_settings_for


@pytest.fixture(autouse=True)
def _process_globals_restored() -> Iterator[None]:
    """``start`` sets process-wide state as the receiver's own process wants it (pynetdicom
    spools datasets to files in the spool directory): restored after each test, so that
    later tests in this pytest process (pynetdicom peers of the uploader's tests) get
    pynetdicom's defaults whatever ran before them."""
    saved = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir)
    yield
    _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = saved


@pytest.fixture
def receiver_settings(edge_settings: EdgeSettings, tmp_path: Path) -> ReceiverSettings:
    return receiver_settings_for(edge_settings, tmp_path / "receiver")


@pytest.fixture
def receiver(receiver_settings: ReceiverSettings) -> Iterator[Receiver]:
    running = start(receiver_settings)
    yield running
    running.stop(grace_s=2)
