"""Registry settings (environment variables with the ``EDGE_`` prefix)."""

from edge_sql.settings import DatabaseSettings


class RegistrySettings(DatabaseSettings):
    database_file = "registry.db"
    registry_host: str = "0.0.0.0"
    registry_port: int = 8000
    # The outbox relay looks for unpublished changes this often even when nothing wakes it
    # (another registry process sharing the database may have committed some).
    outbox_poll_s: float = 5.0
    # Pause after a failed attempt to reach NATS before trying again.
    outbox_retry_s: float = 1.0
    # How often the relay checks that the datashares bucket matches the database (also
    # after every reconnection), repairing it if JetStream lost it.
    reconcile_s: float = 60.0
    # How long one publish may wait for JetStream's acknowledgement.
    publish_timeout_s: float = 5.0
