"""A tiny third-party graph driver for cs_core: the example of docs/driver-guide.md."""
