"""cs-overlay: the kernel overlayfs graph driver for cs_core (Go containers/storage layout)."""

__version__ = "0.1.0"
