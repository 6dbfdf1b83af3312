"""The fault harness's site: the whole stack (started the way `make run` does) forwarding to
a versioned bucket in a second S3 store, and the accounting table printed at the end.

`make test` runs the short form (a few faults, a few images each); `make faults` runs every
fault with more images (``EDGE_FAULTS=all``, ``EDGE_FAULTS_IMAGES``). It lives under
``tests/`` rather than ``bench/`` because it asserts (lost = 0), where a benchmark only
measures: one pytest suite serves both lengths."""

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio.versioningconfig import ENABLED, VersioningConfig

from edge_testing.servers import start_s3
from edge_testing.stack import Stack, start_stack

# The tests import their helper modules from this directory.
sys.path.insert(0, str(Path(__file__).parent))
from fault_accounting import RESULTS, table
from fault_injection import Site

DESTINATION_BUCKET = "faults-destination"
# A buffer quota of about 25 small images, so that a destination away fills it quickly.
BUFFER_QUOTA_BYTES = 1_000_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("faults")
    destination = start_s3(directory / "destination")
    try:
        store = destination.store(DESTINATION_BUCKET)
        # Every write of a key is kept as a version: a duplicate delivery is seen, not
        # hidden by an overwrite.
        store.client.set_bucket_versioning(DESTINATION_BUCKET, VersioningConfig(ENABLED))
        stack = _start_stack(
            directory,
            EDGE_DEFAULT_DESTINATION=f"s3://{DESTINATION_BUCKET}",
            EDGE_DESTINATION_S3_ENDPOINT=destination.endpoint,
            EDGE_DESTINATION_S3_ACCESS_KEY=destination.access_key,
            EDGE_DESTINATION_S3_SECRET_KEY=destination.secret_key,
            EDGE_BUFFER_QUOTA_BYTES=str(BUFFER_QUOTA_BYTES),
            # Retried soon once the destination is back, so a fault's run stays short.
            EDGE_UPLOADER_BACKOFF_INITIAL_S="0.5",
            EDGE_UPLOADER_BACKOFF_MAX_S="2",
        )
        try:
            yield Site(stack, destination, DESTINATION_BUCKET)
        finally:
            stack.stop()
            if os.environ.get("EDGE_FAULTS_SHOW_LOG"):
                print(stack.log()[-20000:])
    finally:
        destination.process.stop()


def _start_stack(directory: Path, **env: str) -> Stack:
    """The stack on free ports; on other ones if a port was taken meanwhile (the machine's
    other tests pick free ports too, and the launcher refuses a taken one)."""
    for attempt in range(3):
        try:
            return start_stack(directory / f"stack-{attempt}", **env)
        except RuntimeError as exc:
            if "are in use" not in str(exc):
                raise
    raise RuntimeError("no free ports for the stack after 3 attempts")


def pytest_terminal_summary(terminalreporter) -> None:
    if RESULTS:
        terminalreporter.section("fault accounting (lost must be 0)")
        terminalreporter.write_line(table(RESULTS))
