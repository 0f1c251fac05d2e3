"""Go's parsers for driver option values, with Go's error texts (``strconv``, ``units``).

Shared by every driver (through :mod:`cs_core.drivers.api`) so that ``size=10G`` or
``ignore_chown_errors=true`` mean the same to each of them, as in Go where all drivers call
the same functions.
"""

from __future__ import annotations

import re

from cs_core.errors import ConfigError, ExactMessage

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_SIZE_RE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class OptionValueError(ExactMessage, ConfigError):
    """A driver option whose value does not parse; the text is Go's."""


def go_bool(text: str) -> bool | None:
    """Go ``strconv.ParseBool``'s answer, None where it fails."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_bool(value: str) -> bool:
    """Go ``strconv.ParseBool``, with its error text."""
    parsed = go_bool(value)
    if parsed is None:
        raise OptionValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
    return parsed


def ram_in_bytes(value: str) -> int:
    """Go ``units.RAMInBytes``: ``10M``, ``1.5g``, ``512KiB`` ... (binary multiples)."""
    m = _SIZE_RE.match(value)
    if not m:
        raise OptionValueError(f"invalid size: '{value}'")
    try:
        size = float(m.group(1))
    except ValueError:  # "1.2.3" matches the pattern, as in Go, and fails here, as in Go
        raise OptionValueError(f"invalid size: '{value}'") from None
    return int(size * _BINARY.get((m.group(3) or "").lower(), 1))
