"""Row codecs: one record type (a domain dataclass) to a flat mapping of storable values and
back, field by field from the dataclass itself, so an adapter never writes a record's fields out
by hand (a new field is stored everywhere at once).

Each adapter says how it stores the few kinds of value that need it: times (SQLite: fixed-width
UTC text; MongoDB: naive UTC datetimes) and nested lists of dicts (SQLite: JSON text; MongoDB:
arrays). Enums are stored by value, booleans as booleans; a field missing from an older row
takes the dataclass default. A codec may add derived values a query needs (a user's lowercased
name for its unique index); they are written with the record and never read back.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def identity(value: Any) -> Any:
    return value


def _kind(hint: Any) -> tuple[str, Any]:
    """What a field holds: ("time"|"enum"|"bool"|"nested"|"plain", the enum class or None)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        hint = args[0]
    if hint is datetime:
        return "time", None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "enum", hint
    if hint is bool:
        return "bool", None
    if typing.get_origin(hint) in (tuple, list):
        return "nested", None
    return "plain", None


class RowCodec(Generic[T]):
    def __init__(
        self,
        record: type[T],
        *,
        encode_time: Callable[[datetime], Any],
        decode_time: Callable[[Any], datetime | None],
        encode_nested: Callable[[list[Any]], Any] = identity,
        decode_nested: Callable[[Any], list[Any]] = identity,
        key: str = "id",
        derived: Mapping[str, Callable[[T], Any]] | None = None,
    ) -> None:
        self.record = record
        #: The field that identifies a record (SQLite's primary key column; MongoDB's `_id`).
        self.key = key
        self._derived = dict(derived or {})
        hints = typing.get_type_hints(record)
        fields = [f for f in dataclasses.fields(record) if f.name != key]  # type: ignore[arg-type]
        self._kinds = {f.name: _kind(hints[f.name]) for f in fields}
        self._defaults = {f.name for f in fields
                          if f.default is not dataclasses.MISSING
                          or f.default_factory is not dataclasses.MISSING}
        #: Every stored field but the key, in declaration order.
        self.fields: tuple[str, ...] = tuple(f.name for f in fields)
        self._encode_time, self._decode_time = encode_time, decode_time
        self._encode_nested, self._decode_nested = encode_nested, decode_nested

    def encode(
        self, record: T, *, key_as: str | None = None, only: Collection[str] | None = None
    ) -> dict[str, Any]:
        """Every field but the key and every derived value, as storable values; with `key_as`,
        the key too under that name (first); with `only`, just those fields."""
        out: dict[str, Any] = {}
        if key_as is not None:
            out[key_as] = getattr(record, self.key)
        for name in self.fields:
            if only is not None and name not in only:
                continue
            value = getattr(record, name)
            kind, enum_type = self._kinds[name]
            if value is None:
                out[name] = None
            elif kind == "time":
                out[name] = self._encode_time(value)
            elif kind == "enum":
                out[name] = enum_type(value).value  # a plain value of the enum is taken too
            elif kind == "bool":
                out[name] = bool(value)
            elif kind == "nested":
                out[name] = self._encode_nested([dict(item) for item in value])
            else:
                out[name] = value
        if only is None:
            out.update((name, derive(record)) for name, derive in self._derived.items())
        return out

    def values(self, record: T) -> tuple[Any, ...]:
        """`encode`'s values in `fields` order (SQLite parameters for a fixed column list)."""
        encoded = self.encode(record)
        return tuple(encoded[name] for name in self.fields)

    def decode(self, row: Mapping[str, Any], key: str) -> T:
        """The record of `key` from a stored row (a missing field takes its default)."""
        values: dict[str, Any] = {self.key: key}
        for name in self.fields:
            if name not in row:
                if name in self._defaults:
                    continue
                values[name] = None
                continue
            value = row[name]
            kind, enum_type = self._kinds[name]
            if value is None:
                values[name] = () if kind == "nested" else None
            elif kind == "time":
                values[name] = self._decode_time(value)
            elif kind == "enum":
                values[name] = enum_type(value)
            elif kind == "bool":
                values[name] = bool(value)
            elif kind == "nested":
                values[name] = tuple(dict(item) for item in self._decode_nested(value))
            else:
                values[name] = value
        return self.record(**values)
