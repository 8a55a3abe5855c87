"""training stage of dicebench."""
