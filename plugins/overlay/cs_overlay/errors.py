"""Errors whose text is exactly Go's overlay message (no generic suffix)."""

from __future__ import annotations

from cs_core.errors import ConfigError, DriverError, NotSupported


class _Exact:
    detail: str | None
    message: str

    def __str__(self) -> str:
        return self.detail or self.message


class OverlayError(_Exact, DriverError):
    """A failure of the overlay driver."""


class OverlayConfigError(_Exact, ConfigError):
    """A bad overlay option."""


class OverlayNotSupported(_Exact, NotSupported):
    """Overlay cannot work here (wrong backing filesystem, kernel without overlay, ...)."""
