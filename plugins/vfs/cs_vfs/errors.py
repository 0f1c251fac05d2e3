"""Errors whose text is exactly Go's vfs message (no generic suffix)."""

from __future__ import annotations

from cs_core import ConfigError, DriverError, ExactMessage


class VfsError(ExactMessage, DriverError):
    """A failure of the vfs driver."""


class VfsConfigError(ExactMessage, ConfigError):
    """An option the vfs driver does not accept."""
