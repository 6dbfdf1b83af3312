"""Receiver settings: every field is an ``EDGE_``-prefixed environment variable."""

from pathlib import Path

from pydantic import Field

from edge_core.settings import EdgeSettings


class ReceiverSettings(EdgeSettings):
    receiver_host: str = "0.0.0.0"
    receiver_port: int = 11112
    # The receiver's own AE title: what a calling-mode PACS is told to call (any called AE
    # title is accepted in calling mode; this one only decides the reject reason, see routing).
    receiver_ae_title: str = "EDGE"

    # Hardening.
    receiver_max_associations: int = 32
    # Pending connections: not (yet) an accepted association, each holding a thread. Over
    # either limit the oldest pending connection is closed (a PACS's request takes
    # milliseconds: the oldest are idle or trickling peers).
    receiver_max_connections: int = 128
    receiver_max_connections_per_host: int = 16
    # Every PDU must arrive whole within this many seconds of its first byte (a peer that
    # trickles bytes resets no timer).
    receiver_pdu_deadline_s: float = 30.0
    # Maximum PDU length we advertise; a PDU declaring more than this plus 64 KiB (for an
    # A-ASSOCIATE-RQ with many contexts) closes the connection before anything is read.
    receiver_max_pdu_bytes: int = 1_048_576
    receiver_acse_timeout_s: float = 30.0
    receiver_dimse_timeout_s: float = 60.0
    # Idle connection (and a stalled read or TLS handshake) is dropped after this.
    receiver_network_timeout_s: float = 60.0
    # A DIMSE message with more PDVs of under 128 bytes than this aborts its association:
    # parsing floods of empty PDVs costs CPU (a real sender uses one or two per message).
    receiver_max_tiny_pdvs: int = 64

    # DICOM TLS: on when both a certificate and key are given; with a CA file, clients must
    # present a certificate it signed.
    receiver_tls_cert: Path | None = None
    receiver_tls_key: Path | None = None
    receiver_tls_ca: Path | None = None

    # How long a C-STORE waits for JetStream to acknowledge its event before refusing.
    receiver_publish_timeout_s: float = 5.0
    # Where incoming datasets are spooled before upload (default: <data_dir>/spool).
    receiver_spool_dir: Path | None = None

    # How often this process says it is alive (receiver.heartbeat). The monitor takes it as
    # gone after three intervals without one, and its associations that never ended as aborted.
    receiver_heartbeat_s: float = Field(default=5.0, gt=0)

    # Buffer quota in bytes (default: 80% of the free disk of data_dir when the receiver starts).
    buffer_quota_bytes: int | None = None
    # How often the buffer is listed to correct local accounting, and buffer.usage published.
    buffer_usage_interval_s: float = 15.0

    @property
    def spool_dir(self) -> Path:
        return self.receiver_spool_dir or self.data_dir / "spool"

    @property
    def tls_enabled(self) -> bool:
        return self.receiver_tls_cert is not None and self.receiver_tls_key is not None

    @property
    def pdu_length_cap(self) -> int:
        return self.receiver_max_pdu_bytes + 65_536
