"""A tiny third-party graph driver for cs_core (used by cs_core's own tests)."""
