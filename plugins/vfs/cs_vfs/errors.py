"""Errors whose text is exactly Go's vfs message (no generic suffix)."""

from __future__ import annotations

from cs_core.errors import ConfigError, DriverError


class _Exact:
    detail: str | None
    message: str

    def __str__(self) -> str:
        return self.detail or self.message


class VfsError(_Exact, DriverError):
    """A failure of the vfs driver."""


class VfsConfigError(_Exact, ConfigError):
    """An option the vfs driver does not accept."""
