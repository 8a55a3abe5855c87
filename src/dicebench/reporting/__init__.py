"""reporting stage of dicebench."""
