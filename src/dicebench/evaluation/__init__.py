"""evaluation stage of dicebench."""
