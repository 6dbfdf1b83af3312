"""Edge receiver."""
