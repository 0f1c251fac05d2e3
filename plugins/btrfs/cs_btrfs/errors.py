"""Errors whose text is exactly Go's btrfs message (no generic suffix)."""

from __future__ import annotations

from cs_core import ConfigError, DriverError, ExactMessage, NotSupported


class BtrfsError(ExactMessage, DriverError):
    """A failure of the btrfs driver."""


class BtrfsConfigError(ExactMessage, ConfigError):
    """A bad btrfs option or per-layer storage option."""


class BtrfsNotSupported(ExactMessage, NotSupported):
    """The home is not on btrfs."""
