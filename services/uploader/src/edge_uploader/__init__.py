"""Edge uploader."""
