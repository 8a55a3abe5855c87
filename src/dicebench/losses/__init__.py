"""losses stage of dicebench."""
