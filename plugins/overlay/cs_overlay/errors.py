"""Errors whose text is exactly Go's overlay message (no generic suffix)."""

from __future__ import annotations

from cs_core import ConfigError, DriverError, ExactMessage, NotSupported


class OverlayError(ExactMessage, DriverError):
    """A failure of the overlay driver."""


class OverlayConfigError(ExactMessage, ConfigError):
    """A bad overlay option."""


class OverlayNotSupported(ExactMessage, NotSupported):
    """Overlay cannot work here (wrong backing filesystem, kernel without overlay, ...)."""
