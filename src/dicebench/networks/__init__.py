"""networks stage of dicebench."""
