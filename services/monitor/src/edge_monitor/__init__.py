"""Edge monitor."""
