"""Slotted record classes declared as with ``attrs.define``/``attrs.frozen``, without attrs.

Importing attrs and letting it build the store's ~25 record and option classes cost every CLI
process ~145M instructions (``python -c pass`` is 91M; NOTES.md, "CLI start-up"). This module
keeps the declarations (annotations, ``field(factory=..., metadata=...)``) and the semantics
the code relies on: ``__slots__``, an ``__init__`` taking the fields in order, ``__eq__``,
``__repr__``, frozen classes immutable and hashable, mutable ones unhashable, ``evolve``,
``fields`` with metadata, pickling and copying.

Each ``__init__`` is compiled on the class's first instantiation: a command builds a few of
the classes it imports. The classes also answer attrs' own protocol (``__attrs_attrs__``, built
with attrs on first access), so ``attrs.evolve``, ``attrs.fields`` and cattrs keep working on
them for plugins and callers that already use attrs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")
C = TypeVar("C", bound=type)


class _Nothing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"


#: No default: the field must be given.
NOTHING: Any = _Nothing()


class FrozenInstanceError(AttributeError):
    """An attribute of a frozen record was assigned or deleted."""

    msg = "can't set attribute"

    def __init__(self) -> None:
        super().__init__(self.msg)


class Field:
    """One declared field: what ``fields(cls)`` returns (attrs' ``Attribute`` subset)."""

    __slots__ = ("default", "eq", "factory", "metadata", "name", "repr", "type")

    def __init__(self, *, default: Any = NOTHING, factory: Callable[[], Any] | None = None,
                 eq: bool = True, repr: bool = True,
                 metadata: Mapping[Any, Any] | None = None) -> None:
        if default is not NOTHING and factory is not None:
            raise ValueError("a field takes a default or a factory, not both")
        self.name = ""
        self.type: Any = None
        self.default = default
        self.factory = factory
        self.eq = eq
        self.repr = repr
        self.metadata: Mapping[Any, Any] = dict(metadata or {})

    @property
    def required(self) -> bool:
        return self.default is NOTHING and self.factory is None

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, type={self.type!r})"


def field(*, default: Any = NOTHING, factory: Callable[[], Any] | None = None, eq: bool = True,
          repr: bool = True, metadata: Mapping[Any, Any] | None = None) -> Any:
    """Declare a field with a default, a factory, metadata or left out of eq/repr."""
    return Field(default=default, factory=factory, eq=eq, repr=repr, metadata=metadata)


def fields(cls: type[Any]) -> tuple[Field, ...]:
    """The fields of a record class, in ``__init__`` order."""
    try:
        return cls.__dict__["__cs_fields__"]  # type: ignore[no-any-return]
    except KeyError:
        raise TypeError(f"{cls!r} is not a record class") from None


def has(cls: type[Any]) -> bool:
    return isinstance(cls, type) and "__cs_fields__" in cls.__dict__


def resolve_types(cls: C) -> C:
    """Set each field's ``type`` from the (string) annotations, as ``attrs.resolve_types``."""
    import typing

    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        f.type = hints[f.name]
    return cls


def evolve(inst: T, **changes: Any) -> T:
    """A copy of ``inst`` with ``changes`` (a shallow copy when there are none)."""
    cls = type(inst)
    values = {f.name: getattr(inst, f.name) for f in fields(cls)}
    values.update(changes)
    return cls(**values)  # type: ignore[no-any-return]


@overload
def define(maybe_cls: C, *, frozen: bool = False) -> C: ...
@overload
def define(maybe_cls: None = None, *, frozen: bool = False) -> Callable[[C], C]: ...


@dataclass_transform(field_specifiers=(field, Field))
def define(maybe_cls: C | None = None, *, frozen: bool = False) -> C | Callable[[C], C]:
    """A mutable (or, with ``frozen=True``, immutable) slotted record class."""

    def wrap(cls: C) -> C:
        return _build(cls, frozen)

    return wrap if maybe_cls is None else wrap(maybe_cls)


@dataclass_transform(frozen_default=True, field_specifiers=(field, Field))
def frozen(cls: C) -> C:
    """An immutable, hashable slotted record class."""
    return _build(cls, True)


# -- building a class ---------------------------------------------------------------------------

_CLASSVAR_PREFIXES = ("ClassVar", "typing.ClassVar", "t.ClassVar")


def _is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):  # postponed annotations, as every module here writes them
        return annotation.startswith(_CLASSVAR_PREFIXES)
    import typing

    return annotation is typing.ClassVar or getattr(annotation, "__origin__", None) is typing.ClassVar


def _declared(cls: type) -> list[Field]:
    own: list[Field] = []
    # Not inspect.get_annotations: importing inspect costs ~35M instructions.
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, NOTHING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name, f.type = name, annotation
        own.append(f)
    inherited = [f for base in reversed(cls.__mro__[1:]) for f in base.__dict__.get(
        "__cs_fields__", ()) if f.name not in {o.name for o in own}]
    result = inherited + own
    seen_default = False
    for f in result:
        if f.required and seen_default:
            raise ValueError(f"{cls.__name__}: no mandatory field {f.name!r} after a defaulted one")
        seen_default = seen_default or not f.required
    return result


def _build(cls: C, frozen: bool) -> C:
    declared = _declared(cls)
    names = tuple(f.name for f in declared)
    body = {k: v for k, v in cls.__dict__.items()
            if k not in names and k not in ("__dict__", "__weakref__")}
    base_slots = {s for base in cls.__mro__[1:] for s in base.__dict__.get("__slots__", ())}
    has_weakref = any("__weakref__" in b.__dict__ for b in cls.__mro__[1:])
    body["__slots__"] = tuple(n for n in names if n not in base_slots) + (
        () if has_weakref else ("__weakref__",))
    body["__cs_fields__"] = tuple(declared)
    body["__cs_frozen__"] = frozen
    for name, method in _methods(frozen):
        if name not in cls.__dict__:  # as attrs' auto_detect: a method the class wrote wins
            body[name] = method
    new = type(cls)(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__
    _fix_class_cells(new, cls)
    return new


def _methods(frozen: bool) -> list[tuple[str, Any]]:
    methods: list[tuple[str, Any]] = [
        ("__init__", _lazy_init), ("__repr__", _repr), ("__eq__", _eq),
        ("__getstate__", _getstate), ("__setstate__", _setstate),
        ("__attrs_attrs__", _AttrsView()),
    ]
    if frozen:
        methods += [("__setattr__", _frozen_setattr), ("__delattr__", _frozen_delattr),
                    ("__hash__", _hash)]
    else:
        methods.append(("__hash__", None))  # mutable and compared by value: unhashable
    return methods


def _fix_class_cells(new: type, old: type) -> None:
    """Point ``super()``/``__class__`` cells of the methods at the rebuilt class."""
    for value in new.__dict__.values():
        func = getattr(value, "__func__", value)
        if isinstance(value, property):
            func = value.fget
        for cell in getattr(func, "__closure__", None) or ():
            try:
                if cell.cell_contents is old:
                    cell.cell_contents = new
            except ValueError:
                continue  # an empty cell


def _lazy_init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    owner = next(c for c in cls.__mro__ if c.__dict__.get("__init__") is _lazy_init)
    init = _compile_init(owner)
    owner.__init__ = init  # type: ignore[misc]
    init(self, *args, **kwargs)


def _compile_init(cls: type) -> Callable[..., None]:
    declared: tuple[Field, ...] = cls.__dict__["__cs_fields__"]
    env: dict[str, Any] = {"_set": object.__setattr__, "NOTHING": NOTHING}
    params, lines = ["self"], []
    for i, f in enumerate(declared):
        if f.factory is not None:
            env[f"_factory_{i}"] = f.factory
            params.append(f"{f.name}=NOTHING")
            value = f"_factory_{i}() if {f.name} is NOTHING else {f.name}"
        else:
            if not f.required:
                env[f"_default_{i}"] = f.default
            params.append(f.name if f.required else f"{f.name}=_default_{i}")
            value = f.name
        lines.append(f"    _set(self, {f.name!r}, {value})")
    source = f"def __init__({', '.join(params)}):\n" + ("\n".join(lines) or "    pass") + "\n"
    exec(compile(source, f"<record {cls.__qualname__}.__init__>", "exec"), env)
    init: Callable[..., None] = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _values(self: Any, only: str = "") -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in type(self).__cs_fields__
                 if not only or getattr(f, only))


def _repr(self: Any) -> str:
    cls = type(self)
    inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in cls.__cs_fields__ if f.repr)
    return f"{cls.__qualname__.rsplit('>.', 1)[-1]}({inner})"


def _eq(self: Any, other: Any) -> object:  # a bool, or NotImplemented
    if other.__class__ is not self.__class__:
        return NotImplemented
    return bool(_values(self, "eq") == _values(other, "eq"))


def _hash(self: Any) -> int:
    return hash((type(self).__qualname__, _values(self, "eq")))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError


def _getstate(self: Any) -> tuple[Any, ...]:
    return _values(self)


def _setstate(self: Any, state: tuple[Any, ...]) -> None:
    for f, value in zip(type(self).__cs_fields__, state, strict=True):
        object.__setattr__(self, f.name, value)


class _AttrsView:
    """``__attrs_attrs__``: the fields as attrs ``Attribute`` objects, built on first access
    (only code that already imported attrs asks), so attrs' functions and cattrs accept the
    class. Made with ``attrs.make_class``, attrs' public way to describe fields."""

    def __get__(self, inst: Any, owner: type) -> Any:
        import attrs

        # An annotation that does not resolve: attrs gets its text, as from attrs itself.
        with contextlib.suppress(Exception):
            resolve_types(owner)
        spec = {f.name: attrs.field(default=attrs.NOTHING if f.default is NOTHING else f.default,
                                    factory=f.factory, eq=f.eq, repr=f.repr,
                                    metadata=dict(f.metadata), type=f.type)
                for f in fields(owner)}
        view = attrs.fields(attrs.make_class(owner.__name__, spec, slots=True))
        type.__setattr__(owner, "__attrs_attrs__", view)
        return view
