"""The consumers' backlog, read live from JetStream (not an event, so not a projection)."""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from nats.js import JetStreamContext

from edge_core.events import utcnow
from edge_core.topology import MONITOR_CONSUMER, UPLOADER_CONSUMER

log = logging.getLogger(__name__)


@dataclass
class ConsumerLag:
    pending: int  # in the stream, not yet delivered to the consumer
    ack_pending: int  # delivered, not yet acknowledged (in progress or awaiting redelivery)
    redelivered: int


@dataclass
class Backlog:
    consumers: dict[str, ConsumerLag] = field(default_factory=dict)
    stream_last_seq: int = 0
    updated_at: datetime | None = None


async def read_backlog(js: JetStreamContext, stream: str) -> Backlog:
    backlog = Backlog(updated_at=utcnow())
    backlog.stream_last_seq = (await js.stream_info(stream)).state.last_seq
    for name in (UPLOADER_CONSUMER, MONITOR_CONSUMER):
        info = await js.consumer_info(stream, name)
        backlog.consumers[name] = ConsumerLag(
            pending=info.num_pending or 0,
            ack_pending=info.num_ack_pending or 0,
            redelivered=info.num_redelivered or 0,
        )
    return backlog


async def watch_backlog(
    js: JetStreamContext, stream: str, into: Backlog, interval_s: float
) -> None:
    """Refresh ``into`` in place for ever; keeps the last value while NATS is away."""
    while True:
        try:
            fresh = await read_backlog(js, stream)
            into.consumers, into.stream_last_seq = fresh.consumers, fresh.stream_last_seq
            into.updated_at = fresh.updated_at
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("cannot read the consumers' backlog: %s", exc)
        await asyncio.sleep(interval_s)
