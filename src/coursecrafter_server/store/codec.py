"""Row codecs: one record type (a domain dataclass) to a flat mapping of storable values and
back, field by field from the dataclass itself, so an adapter never writes a record's fields out
by hand (a new field is stored everywhere at once).

Each adapter says how it stores the few kinds of value that need it: times (SQLite: fixed-width
UTC text; MongoDB: naive UTC datetimes) and nested lists of dicts (SQLite: JSON text; MongoDB:
arrays). Enums are stored by value, booleans as booleans; a field missing from an older row
takes the dataclass default.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def _identity(value: Any) -> Any:
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
        encode_nested: Callable[[list[Any]], Any] = _identity,
        decode_nested: Callable[[Any], list[Any]] = _identity,
        key: str = "id",
    ) -> None:
        self.record = record
        self.key = key
        hints = typing.get_type_hints(record)
        fields = [f for f in dataclasses.fields(record) if f.name != key]  # type: ignore[arg-type]
        self._kinds = {f.name: _kind(hints[f.name]) for f in fields}
        self._defaults = {f.name for f in fields
                          if f.default is not dataclasses.MISSING
                          or f.default_factory is not dataclasses.MISSING}
        #: Every stored field but the key, in declaration order (SQLite's column order).
        self.fields: tuple[str, ...] = tuple(f.name for f in fields)
        self._encode_time, self._decode_time = encode_time, decode_time
        self._encode_nested, self._decode_nested = encode_nested, decode_nested

    def encode(self, record: T) -> dict[str, Any]:
        """Every field but the key, as storable values."""
        out: dict[str, Any] = {}
        for name in self.fields:
            value = getattr(record, name)
            kind, _ = self._kinds[name]
            if value is None:
                out[name] = None
            elif kind == "time":
                out[name] = self._encode_time(value)
            elif kind == "enum":
                out[name] = value.value
            elif kind == "bool":
                out[name] = bool(value)
            elif kind == "nested":
                out[name] = self._encode_nested([dict(item) for item in value])
            else:
                out[name] = value
        return out

    def values(self, record: T) -> tuple[Any, ...]:
        """`encode` as a tuple in `fields` order (SQLite parameters)."""
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
