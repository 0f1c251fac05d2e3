"""The one converter between records and the Go library's JSON files.

Output is byte-compatible with Go's ``encoding/json`` (which the Go library's jsoniter mimics):
struct fields in declaration order, ``omitempty`` rules per field, map keys sorted, compact
separators, HTML-safe escaping of ``<``, ``>`` and ``&``, raw UTF-8 otherwise, and RFC 3339
times with trailing-zero-trimmed nanoseconds. Times keep their nanoseconds exactly so that a
record written by Go and rewritten by us is unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from cs_core import recordclass
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
    year, month, day, hour, minute, second, frac, zone = m.groups()
    nanos = int(frac.ljust(9, "0")) if frac else 0
    tz = _ZONES.get(zone) or _zone(zone)
    extra = nanos % 1000
    # Text that format_time would write back unchanged is kept with the value, so saving an
    # untouched record does not format its time again (thousands of records per save).
    canonical = (not frac or frac[-1] != "0") and zone not in ("+00:00", "-00:00")
    obj = (GoTime if extra or canonical else _dt.datetime)(
        int(year), int(month), int(day), int(hour), int(minute), int(second), nanos // 1000,
        tzinfo=tz,
    )
    if extra:
        obj.extra_nanos = extra  # type: ignore[attr-defined]
    if canonical:
        obj.text = text  # type: ignore[attr-defined]
    return obj


_ZONES: dict[str, _dt.tzinfo] = {"Z": _dt.UTC}


def _zone(zone: str) -> _dt.tzinfo:
    sign = 1 if zone[0] == "+" else -1
    tz = _dt.timezone(sign * _dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    _ZONES[zone] = tz  # only valid offsets get here: timezone() refuses the others
    return tz


class GoTime(_dt.datetime):
    """A datetime that remembers the nanoseconds below its microseconds.

    ``text`` is the RFC 3339 text it was parsed from when that is exactly what ``format_time``
    writes for it. Values derived from it (``replace``, arithmetic) are new objects without it.
    """

    extra_nanos: int = 0
    text: str | None = None

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
    known: str | None = getattr(value, "text", None)
    if known is not None:
        return known
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    nanos = value.microsecond * 1000 + getattr(value, "extra_nanos", 0)
    # Formatted by hand: strftime costs several times as much, once per record per save.
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
            f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
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
    # Most files hold none of these: a scan per character is far cheaper than the regex pass.
    if any(c in text for c in _HTML_ESCAPES):
        return _HTML_RE.sub(lambda m: _HTML_ESCAPES[m.group(0)], text)
    return text


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False or (
        isinstance(value, list | dict) and not value
    )


def _make_converter() -> cattrs.Converter:
    import cattrs

    conv = cattrs.Converter()
    conv.register_unstructure_hook(_dt.datetime, format_time)
    conv.register_structure_hook(_dt.datetime, lambda v, _: parse_time(v))
    for cls in (IDMap, Layer, Image, Container, MountRecord):
        recordclass.resolve_types(cls)
        conv.register_unstructure_hook(cls, _record_unstructure(conv, cls))
        conv.register_structure_hook(cls, _record_structure(conv, cls))
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


def _record_unstructure(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """A record as Go writes it: its persisted fields by JSON key, omitempty ones left out
    when empty, maps sorted."""
    fields = [(f.name, *f.metadata[JSON]) for f in recordclass.fields(cls) if f.metadata[JSON][2]]

    def unstructure(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key, omitempty, _ in fields:
            value = getattr(obj, name)
            if omitempty and _is_empty(value):
                continue
            out[key] = conv.unstructure(value)
        if "flags" in out:
            out["flags"] = _sort_maps(out["flags"])
        for key in _SORTED_MAPS:
            if key in out:
                out[key] = dict(sorted(out[key].items()))
        return out

    return unstructure


def _record_structure(conv: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    """A record from a JSON object: unknown keys and nulls dropped, wrong types refused."""
    import cattrs

    def structure(data: Any, _: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for f in recordclass.fields(cls):
            key, _omit, persist = f.metadata[JSON]
            if not persist or key not in data or data[key] is None:
                continue
            try:
                kwargs[f.name] = conv.structure(data[key], f.type)
            except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
                # Name the field: a hand-edited file must be fixable from the message.
                raise ValueError(f'field "{key}": {_describe(exc)}') from exc
        return cls(**kwargs)

    return structure


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


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a whole file is converted.

    Converting 10,000 records allocates ~100,000 containers, and each collection that this
    triggers walks every live container, the records already built included: measured, the
    collector took most of a big store's load and save time, growing with the store. Records
    hold no reference cycles, so nothing waits for the collector meanwhile.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def dumps_records(records: Iterable[Any]) -> bytes:
    """Encode a list of records as a Go store file (``[]`` when empty)."""
    with paused_gc():
        return go_json_dumps([unstructure(r) for r in records]).encode()


def loads_records(data: bytes, cls: type[T], source: str) -> list[T]:
    """Decode a Go store file; errors name the file, never a traceback for the user."""
    if not data.strip():
        return []
    with paused_gc():
        try:
            raw = json.loads(data)
            if not isinstance(raw, list):
                raise ValueError("expected a JSON array")
            plan = _plans().get(cls)
            if plan is None:
                conv = get_converter()
                return [conv.structure(item, cls) for item in raw]
            return [_structure_record(item, cls, plan) for item in raw]
        except _record_errors() as exc:
            raise CorruptRecordFile.in_file(source, f"loading {source}: {_describe(exc)}") from exc
        except RecursionError:
            # json and cattrs recurse: a file nested thousands deep is damage, not a crash.
            raise CorruptRecordFile.in_file(source, f"loading {source}: JSON nested too deeply") from None


# -- the fast paths ------------------------------------------------------------------------------
#
# A store file holds one record per layer, image or container, and every command that changes
# one reads and rewrites them all: the cattrs hooks above cost ~20 us per record each way, which
# at 10,000 items is most of a command's time. The plans below do the same conversions for the
# common case in plain code. Whatever they do not recognise exactly (a float where an int
# belongs, a value of an unexpected type, an odd nested flag) is handed to the cattrs hooks for
# that record, so results and error messages are the hooks' own, and the hooks stay the
# definition of the format.

_STR, _INT, _BOOL, _TIME, _STRS, _INTS, _MAPS, _ANY_MAP, _INT_MAP, _STR_MAP = range(10)
_SCALARS = (str, int, bool, float, type(None))
_SORTED_MAPS = ("big-data-sizes", "big-data-digests")


class _Slow(Exception):
    """This record needs the general (cattrs) conversion."""


#: Per record class: (attribute, JSON key, omitempty, kind) of each persisted field.
_Plan = tuple[tuple[str, str, bool, int], ...]
_plan_cache: dict[type[Any], _Plan] | None = None


def _kind(tp: Any) -> int:
    kinds: dict[Any, int] = {
        str: _STR, int: _INT, bool: _BOOL, _dt.datetime: _TIME, list[str]: _STRS,
        list[int]: _INTS, list[IDMap]: _MAPS, dict[str, Any]: _ANY_MAP,
        dict[str, int]: _INT_MAP, dict[str, str]: _STR_MAP,
    }
    return kinds[tp]


def _plans() -> dict[type[Any], _Plan]:
    global _plan_cache
    if _plan_cache is not None:
        return _plan_cache
    plans: dict[type[Any], _Plan] = {}
    for cls in (Layer, Image, Container, MountRecord):
        recordclass.resolve_types(cls)
        plans[cls] = tuple(
            (f.name, f.metadata[JSON][0], f.metadata[JSON][1], _kind(f.type))
            for f in recordclass.fields(cls) if f.metadata[JSON][2]
        )
    _plan_cache = plans
    return plans


def _structure_record(data: Any, cls: type[T], plan: _Plan) -> T:
    try:
        return _fast_structure(data, cls, _by_key(cls, plan))
    except _Slow:
        return get_converter().structure(data, cls)  # type: ignore[no-any-return]


_key_cache: dict[type[Any], dict[str, tuple[str, int]]] = {}


def _by_key(cls: type[Any], plan: _Plan) -> dict[str, tuple[str, int]]:
    found = _key_cache.get(cls)
    if found is None:
        found = _key_cache[cls] = {key: (name, kind) for name, key, _omit, kind in plan}
    return found


def _fast_structure(data: Any, cls: type[T], by_key: dict[str, tuple[str, int]]) -> T:
    if type(data) is not dict:
        raise _Slow
    kwargs: dict[str, Any] = {}
    # A record holds few of its fields: walk what it has, not every field there is.
    for key, value in data.items():
        field = by_key.get(key)
        if field is None or value is None:
            continue  # unknown keys are dropped, as by the general hook (and Go)
        name, kind = field
        tp = type(value)
        if kind == _STR:
            if tp is not str:
                raise _Slow
        elif kind == _TIME:
            if tp is not str:
                raise _Slow
            try:
                value = parse_time(value)
            except ValueError:
                raise _Slow from None
        elif kind == _INT:
            if tp is not int:
                raise _Slow
        elif kind == _BOOL:
            if tp is not bool:
                raise _Slow
        elif kind == _ANY_MAP:
            if tp is not dict:
                raise _Slow
        elif kind == _MAPS:
            value = _fast_id_maps(value)
        elif tp is list if kind in (_STRS, _INTS) else tp is dict:
            want = str if kind in (_STRS, _STR_MAP) else int
            items = value if tp is list else value.values()
            for item in items:
                if type(item) is not want:
                    raise _Slow
        else:
            raise _Slow
        kwargs[name] = value
    return cls(**kwargs)


def _fast_id_maps(value: Any) -> list[IDMap]:
    if type(value) is not list:
        raise _Slow
    out = []
    for item in value:
        if type(item) is not dict:
            raise _Slow
        c, h, n = item.get("container_id"), item.get("host_id"), item.get("size")
        if type(c) is not int or type(h) is not int or type(n) is not int:
            raise _Slow
        out.append(IDMap(c, h, n))
    return out


def unstructure(record: Any) -> Any:
    """A record (or any value the converter knows) as Go's JSON shapes it; the records of the
    store files by the fast plans, without building the converter."""
    plan = _plans().get(type(record))
    if plan is not None:
        try:
            return _fast_unstructure(record, plan)
        except _Slow:
            pass
    return get_converter().unstructure(record)


def _fast_unstructure(record: Any, plan: _Plan) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key, omitempty, kind in plan:
        value = getattr(record, name)
        tp = type(value)
        if omitempty and (not value if tp in _SCALARS or tp is list or tp is dict
                          else _is_empty(value)):
            continue
        if kind == _TIME and isinstance(value, _dt.datetime):
            value = format_time(value)
        elif tp is list:
            if kind == _MAPS:
                value = [_fast_id_map(m) for m in value]
            else:
                for item in value:
                    if type(item) not in _SCALARS:
                        raise _Slow
        elif tp is dict:
            # The same keys as the general hook sorts, and only those.
            if key == "flags":
                value = _sorted_plain(value)
            elif key in _SORTED_MAPS:
                value = dict(sorted(_plain_items(value)))
            else:
                raise _Slow
        elif tp not in _SCALARS:
            raise _Slow
        out[key] = value
    return out


def _fast_id_map(value: Any) -> dict[str, Any]:
    if type(value) is not IDMap:
        raise _Slow
    c, h, n = value.container_id, value.host_id, value.size
    if type(c) is not int or type(h) is not int or type(n) is not int:
        raise _Slow
    return {"container_id": c, "host_id": h, "size": n}


def _plain_items(value: dict[Any, Any]) -> Iterable[tuple[str, Any]]:
    for k, v in value.items():
        if type(k) is not str or type(v) not in _SCALARS:
            raise _Slow
    return value.items()


def _sorted_plain(value: Any) -> Any:
    """``_sort_maps`` for values made only of JSON's own types (else the general path)."""
    tp = type(value)
    if tp is dict:
        if any(type(k) is not str for k in value):
            raise _Slow
        return {k: _sorted_plain(value[k]) for k in sorted(value)}
    if tp is list:
        return [_sorted_plain(v) for v in value]
    if tp not in _SCALARS:
        raise _Slow
    return value


def _record_errors() -> tuple[type[BaseException], ...]:
    """What a bad record raises. cattrs' own errors only once something imported cattrs: the
    fast paths read a well-formed file without it (~10-30 ms of a CLI process), and only the
    converter, which imports it, can raise them."""
    cattrs = sys.modules.get("cattrs")
    if cattrs is None:
        return (ValueError, TypeError, KeyError)
    return (ValueError, TypeError, KeyError, cattrs.BaseValidationError)


def _describe(exc: BaseException) -> str:
    cattrs = sys.modules.get("cattrs")
    if cattrs is not None and isinstance(exc, cattrs.BaseValidationError):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _describe(inner)
    return str(exc)
