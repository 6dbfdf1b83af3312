"""One scenario's figures: a peer, a kind of data, a number of associations."""

from dataclasses import dataclass, field


@dataclass
class Result:
    peer: str
    data: str  # "ct" (~0.5 MB images) or "small" (~40 kB)
    associations: int
    instances: int
    megabytes: float
    seconds: float
    # Edge's ingest peer: how long after the last Success the buffer was empty.
    drain_seconds: float | None = None
    # Timed until the last instance was counted at the destination (routers, Edge forwarding).
    whole_job: bool = False
    # Instances of this scenario counted at the destination (whole-job peers).
    delivered: int | None = None
    # CPU milliseconds per instance (send, and drain or delivery) and peak RSS (MB) after the
    # scenario, of each component of the peer's process tree.
    cpu_ms: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.instances / self.seconds

    @property
    def mb_per_second(self) -> float:
        return self.megabytes / self.seconds

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_ms.values())

    @property
    def case(self) -> str:
        return f"{self.data} x{self.associations}"
