"""``/metrics``: a Prometheus collector that reads the projections at every scrape, so the
numbers are exactly the status API's (and survive restarts, unlike in-process counters)."""

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from edge_core.events import utcnow
from edge_monitor import models
from edge_monitor.backlog import Backlog
from edge_monitor.status import gone_receivers, lease_clock

# (metric name, kind, help, the datashare columns whose sum it is)
_PER_DATASHARE = [
    ("edge_instances_received", "counter", "Distinct SOP instances received", ["received"]),
    ("edge_instances_uploaded", "gauge", "SOP instances whose newest version was delivered",
     ["uploaded"]),
    ("edge_instances_replaced", "counter", "SOP instances received in more than one version",
     ["replaced"]),
    ("edge_instance_versions", "counter", "Versions received (a re-send with other bytes is one)",
     ["versions"]),
    ("edge_instances_pending", "gauge", "Instances waiting in the buffer", ["pending", "failing"]),
    ("edge_instances_retrying", "gauge", "Instances whose last upload failed", ["failing"]),
    ("edge_instances_dead_lettered", "gauge", "Instances dead-lettered", ["dead"]),
    ("edge_instances_refused", "counter", "C-STORE requests answered with a failure", ["refused"]),
    ("edge_upload_failures", "counter", "Failed upload attempts", ["failures"]),
    ("edge_instances_deidentified", "counter", "Versions forwarded de-identified",
     ["deidentified"]),
    ("edge_instances_held", "counter",
     "Versions held by de-identification (identity may be burned into the pixels)", ["held"]),
    ("edge_bytes_received", "counter", "Bytes of the SOP instances received (newest versions)",
     ["received_bytes"]),
    ("edge_bytes_uploaded", "gauge", "Bytes delivered", ["uploaded_bytes"]),
    ("edge_associations", "counter", "Associations accepted", ["associations_total"]),
    ("edge_associations_rejected", "counter", "Rejected associations that named this datashare",
     ["associations_rejected"]),
    ("edge_buffer_orphans_removed", "counter",
     "Buffer objects no instance.stored named (refused after the write), removed",
     ["orphans_removed"]),
]  # fmt: skip


class ProjectionCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session], backlog: Backlog) -> None:
        self.sessions = sessions
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        with self.sessions() as session:
            datashares = session.scalars(
                select(models.Datashare).where(models.Datashare.deleted.is_(False))
            ).all()
            clock = lease_clock(session, utcnow(), self.backlog)
            gone = gone_receivers(session.scalars(select(models.Receiver)).all(), clock)
            active: Counter[str] = Counter()
            for ds, receiver, count in session.execute(
                select(models.Association.datashare, models.Association.receiver, func.count())
                .where(models.Association.state == "active")
                .group_by(models.Association.datashare, models.Association.receiver)
            ):
                if receiver not in gone:
                    active[ds] += count
            rejections = session.scalars(select(models.RejectionTotal)).all()
            buffer = session.get(models.Buffer, 1)

        for name, kind, doc, columns in _PER_DATASHARE:
            family: CounterMetricFamily | GaugeMetricFamily = (
                CounterMetricFamily(name, doc, labels=["datashare"])
                if kind == "counter"
                else GaugeMetricFamily(name, doc, labels=["datashare"])
            )
            for d in datashares:
                family.add_metric([d.id], sum(getattr(d, c) for c in columns))
            yield family

        gauge = GaugeMetricFamily(
            "edge_associations_active", "Associations open now", labels=["datashare"]
        )
        for d in datashares:
            gauge.add_metric([d.id], active.get(d.id, 0))
        yield gauge

        counter = CounterMetricFamily(
            "edge_rejections",
            "Associations rejected, by A-ASSOCIATE-RJ reason (7: called AE title not recognised,"
            " 3: calling AE title not recognised, 1: no reason given, e.g. address not allowed)",
            labels=["reason"],
        )
        for r in rejections:
            counter.add_metric([str(r.reason)], r.count)
        yield counter

        if buffer is not None:
            yield GaugeMetricFamily("edge_buffer_bytes", "Bytes in the buffer", buffer.used_bytes)
            yield GaugeMetricFamily(
                "edge_buffer_quota_bytes", "Buffer quota in bytes", buffer.quota_bytes
            )
            yield GaugeMetricFamily("edge_buffer_objects", "Objects in the buffer", buffer.objects)
            yield GaugeMetricFamily(
                "edge_buffer_refusing",
                "1 while the receiver refuses (buffer full)",
                buffer.refusing,
            )

        lag = GaugeMetricFamily(
            "edge_consumer_lag",
            "Events not yet acknowledged by a consumer (pending + in progress)",
            labels=["consumer"],
        )
        for consumer, info in self.backlog.consumers.items():
            lag.add_metric([consumer], info.pending + info.ack_pending)
        yield lag


def make_registry(sessions: sessionmaker[Session], backlog: Backlog) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProjectionCollector(sessions, backlog))
    return registry
