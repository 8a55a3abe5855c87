"""preprocessing stage of dicebench."""
