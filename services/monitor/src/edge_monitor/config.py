"""The monitor's settings: ``EDGE_``-prefixed environment variables (``EDGE_MONITOR_PORT``...)."""

from pydantic import SecretStr

from edge_sql.settings import DatabaseSettings


class MonitorSettings(DatabaseSettings):
    database_file = "monitor.db"
    monitor_host: str = "0.0.0.0"
    monitor_port: int = 8001
    # A token that reads /metrics and nothing else (the API token reads it too).
    metrics_token: SecretStr = SecretStr("")

    # Health verdicts and flags (seconds).
    # A datashare is "receiving" while its last instance is younger than this, else "idle".
    monitor_idle_after_s: float = 60.0
    # "stalled": instances have waited this long and nothing was uploaded meanwhile.
    monitor_stalled_after_s: float = 120.0
    # A study is "quiet" when no new instance arrived for this long.
    monitor_quiet_after_s: float = 300.0
    # Throughput is averaged over this window.
    monitor_rate_window_s: float = 60.0
    # Rejected associations shown are those of this window, grouped by AE titles and peer.
    monitor_rejections_window_s: float = 24 * 3600.0

    # How much the status lists per datashare (the counters always cover everything).
    monitor_recent_associations: int = 10
    monitor_studies_listed: int = 50

    # Events applied per database transaction (at most 500: see topology.MONITOR_MAX_BATCH),
    # and how often the consumers' backlog is read.
    monitor_batch_size: int = 500
    monitor_backlog_poll_s: float = 2.0
