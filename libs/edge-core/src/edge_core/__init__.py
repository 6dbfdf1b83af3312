"""What every Edge service shares: events, settings, JetStream topology, object store, logging."""
