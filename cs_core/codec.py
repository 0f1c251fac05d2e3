"""The one converter between records and the Go library's JSON files.

Output is byte-compatible with Go's ``encoding/json`` (which the Go library's jsoniter mimics):
struct fields in declaration order, ``omitempty`` rules per field, map keys sorted, compact
separators, HTML-safe escaping of ``<``, ``>`` and ``&``, raw UTF-8 otherwise, and RFC 3339
times with trailing-zero-trimmed nanoseconds. Times keep their nanoseconds exactly so that a
record written by Go and rewritten by us is unchanged.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from cs_core.errors import CorruptRecordFile
from cs_core.model import JSON, Container, IDMap, Image, Layer, MountRecord

if TYPE_CHECKING:
    import cattrs

T = TypeVar("T")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_TIME_RE = re.compile(
    r"^(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$"
)


def parse_time(text: str) -> _dt.datetime:
    """Parse an RFC 3339 time as Go writes it, keeping nanoseconds (see ``GoTime``)."""
    m = _TIME_RE.match(text)
    if not m:
        raise ValueError(f"invalid time {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(9, "0")
    nanos = int(frac) if frac else 0
    zone = m.group(8)
    if zone == "Z":
        tz = _dt.UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = _dt.timezone(sign * _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    base = _dt.datetime(year, month, day, hour, minute, second, nanos // 1000, tzinfo=tz)
    return GoTime.wrap(base, nanos % 1000)


class GoTime(_dt.datetime):
    """A datetime that remembers the nanoseconds below its microseconds."""

    extra_nanos: int = 0

    @classmethod
    def wrap(cls, value: _dt.datetime, extra_nanos: int) -> _dt.datetime:
        if not extra_nanos:
            return value
        obj = cls(
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond, tzinfo=value.tzinfo,
        )
        obj.extra_nanos = extra_nanos
        return obj


def format_time(value: _dt.datetime) -> str:
    """Format like Go's ``time.RFC3339Nano``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    nanos = value.microsecond * 1000 + getattr(value, "extra_nanos", 0)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.year < 1000:
        text = f"{value.year:04d}" + text[text.index("-"):]
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    offset = value.utcoffset() or _dt.timedelta(0)
    if offset == _dt.timedelta(0):
        return text + "Z"
    total = int(offset.total_seconds()) // 60
    sign = "+" if total >= 0 else "-"
    total = abs(total)
    return f"{text}{sign}{total // 60:02d}:{total % 60:02d}"


def unix_nanos(value: _dt.datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000 + getattr(
        value, "extra_nanos", 0
    )


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                 "\u2029": "\\u2029"}
_HTML_RE = re.compile("[<>&\u2028\u2029]")


def go_json_dumps(value: Any) -> str:
    """Serialize like Go's ``json.Marshal``: compact, sorted map keys, HTML-safe."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group(0)], text)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False or (
        isinstance(value, list | dict) and not value
    )


def _make_converter() -> cattrs.Converter:
    import cattrs

    conv = cattrs.Converter()
    conv.register_unstructure_hook(_dt.datetime, format_time)
    conv.register_structure_hook(_dt.datetime, lambda v, _: parse_time(v))

    def record_hooks(cls: type[Any]) -> None:
        fields = [
            (f.name, *f.metadata[JSON]) for f in attrs.fields(cls) if f.metadata[JSON][2]
        ]

        def unstructure(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, key, omitempty, _ in fields:
                value = getattr(obj, name)
                if omitempty and _is_empty(value):
                    continue
                out[key] = conv.unstructure(value)
            if "flags" in out:
                out["flags"] = _sort_maps(out["flags"])
            for key in ("big-data-sizes", "big-data-digests"):
                if key in out:
                    out[key] = dict(sorted(out[key].items()))
            return out

        def structure(data: Any, _: Any) -> Any:
            if not isinstance(data, dict):
                raise ValueError(f"expected a JSON object, got {type(data).__name__}")
            kwargs: dict[str, Any] = {}
            for f in attrs.fields(cls):
                key, _omit, persist = f.metadata[JSON]
                if not persist or key not in data or data[key] is None:
                    continue
                try:
                    kwargs[f.name] = conv.structure(data[key], f.type)
                except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
                    # Name the field: a hand-edited file must be fixable from the message.
                    raise ValueError(f'field "{key}": {_describe(exc)}') from exc
            return cls(**kwargs)

        conv.register_unstructure_hook(cls, unstructure)
        conv.register_structure_hook(cls, structure)

    for cls in (IDMap, Layer, Image, Container, MountRecord):
        attrs.resolve_types(cls)
        record_hooks(cls)
    conv.register_structure_hook_func(
        lambda t: t == dict[str, Any], lambda v, _: _require(v, dict)
    )
    # Strict lists too: cattrs would turn "names": "x" into ["x"] and the next save would
    # silently rewrite the hand-edited record.
    conv.register_structure_hook_func(
        lambda t: getattr(t, "__origin__", None) is list,
        lambda v, t: [conv.structure(x, t.__args__[0]) for x in _require(v, list)],
    )
    # Strict scalars: a wrong-type field is corruption, not something to coerce.
    conv.register_structure_hook(str, lambda v, _: _require(v, str))
    conv.register_structure_hook(bool, lambda v, _: _require(v, bool))
    conv.register_structure_hook(int, lambda v, _: _require_int(v))
    return conv


def _require(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise ValueError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _require_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _sort_maps(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sort_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sort_maps(v) for v in value]
    return value


_converter: cattrs.Converter | None = None


def get_converter() -> cattrs.Converter:
    """The converter, built on first use: cattrs and the hook setup cost a CLI process more
    than most commands' work, and commands that read no records never need them."""
    global _converter
    if _converter is None:
        _converter = _make_converter()
    return _converter


def __getattr__(name: str) -> cattrs.Converter:
    if name == "converter":  # ``codec.converter`` as before, built lazily
        return get_converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dumps_records(records: Iterable[Any]) -> bytes:
    """Encode a list of records as a Go store file (``[]`` when empty)."""
    conv = get_converter()
    return go_json_dumps([conv.unstructure(r) for r in records]).encode()


def loads_records(data: bytes, cls: type[T], source: str) -> list[T]:
    """Decode a Go store file; errors name the file, never a traceback for the user."""
    if not data.strip():
        return []
    import cattrs

    conv = get_converter()
    try:
        raw = json.loads(data)
        if not isinstance(raw, list):
            raise ValueError("expected a JSON array")
        return [conv.structure(item, cls) for item in raw]
    except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
        raise CorruptRecordFile(f"loading {source}: {_describe(exc)}") from exc
    except RecursionError:
        # json and cattrs recurse: a file nested thousands deep is damage, not a crash.
        raise CorruptRecordFile(f"loading {source}: JSON nested too deeply") from None


def _describe(exc: BaseException) -> str:
    import cattrs

    if isinstance(exc, cattrs.BaseValidationError):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _describe(inner)
    return str(exc)
