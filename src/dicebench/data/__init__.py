"""data stage of dicebench."""
