"""The receiver's lease: a ``receiver.heartbeat`` at start and every interval, naming this
process as its associations do. A receiver killed with -9 publishes no end for the
associations it held; the monitor shows them aborted once the heartbeats stop for a lease
(three intervals: one lost or late heartbeat is not a death). Each process has a name of its
own, so that several receivers (behind one port, or on several hosts) never end another's."""

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime

from nats.js import JetStreamContext

from edge_core.bus import publish
from edge_core.events import ReceiverHeartbeat, ReceiverHeartbeatEvent, utcnow

log = logging.getLogger(__name__)

LEASE_INTERVALS = 3


def receiver_name() -> str:
    """Unique per process: the host and pid say where it ran; the random part keeps a
    restarted container (same host name, often the same pid) from taking its predecessor's."""
    return f"receiver-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def beat(js: JetStreamContext, name: str, started_at: datetime, interval_s: float) -> None:
    event = ReceiverHeartbeatEvent(
        data=ReceiverHeartbeat(
            receiver=name, started_at=started_at, lease_s=LEASE_INTERVALS * interval_s
        )
    )
    await publish(js, event, timeout=interval_s)


async def heartbeat(js: JetStreamContext, name: str, interval_s: float) -> None:
    """For ever: a heartbeat every ``interval_s`` (the first at once)."""
    started_at = utcnow()
    while True:
        try:
            await beat(js, name, started_at, interval_s)
        except Exception as exc:  # NATS away: the monitor may see us gone meanwhile
            log.warning("could not publish the receiver's heartbeat: %s", exc)
        await asyncio.sleep(interval_s)
