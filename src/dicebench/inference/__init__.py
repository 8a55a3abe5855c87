"""inference stage of dicebench."""
