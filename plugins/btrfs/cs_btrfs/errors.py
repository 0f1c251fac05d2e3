"""Errors whose text is exactly Go's btrfs message (no generic suffix)."""

from __future__ import annotations

from cs_core.errors import ConfigError, DriverError, NotSupported


class _Exact:
    detail: str | None
    message: str

    def __str__(self) -> str:
        return self.detail or self.message


class BtrfsError(_Exact, DriverError):
    """A failure of the btrfs driver."""


class BtrfsConfigError(_Exact, ConfigError):
    """A bad btrfs option or per-layer storage option."""


class BtrfsNotSupported(_Exact, NotSupported):
    """The home is not on btrfs."""
