"""Edge registry."""
