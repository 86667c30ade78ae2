"""A processor's own state, as it declares it: named key-value stores and their changelogs.

A store's truth is its changelog topic, not the local RocksDB: the local
copy is rebuilt from the changelog when it is missing, behind or damaged,
so a replica stays stateless in the sense that matters (any replica can
take any partition). The changelog is named after the consumer group, not
the processor, so a replay (a group of its own) never writes into the live
group's state, and a topic prefix reaches it as it reaches the group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

import msgpack
from pydantic import BaseModel, ValidationError

from pipeline.errors import ConfigError, PipelineError

ValueT = TypeVar("ValueT")

CHANGELOG_SUFFIX = "-changelog"
_DECIMAL_EXT = 1
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


class StoreValueError(PipelineError):
    """A value a store cannot keep (an unsupported type) or cannot read back."""


@dataclass(frozen=True)
class Store(Generic[ValueT]):
    """A named key-value store of a processor: `Processor(..., stores=(Store("totals"),))`.

    `value` types what `ctx.store(...)` returns: a pydantic model (kept as its
    JSON) or None for plain values (int, float, str, bool, bytes, Decimal,
    lists and dicts of them, kept as msgpack).
    """

    name: str
    value: type[ValueT] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"store name {self.name!r}: use letters, digits, '_' and '.' only "
                "(it is part of the changelog topic's name)"
            )
        if self.value is not None and not (
            isinstance(self.value, type) and issubclass(self.value, BaseModel)
        ):
            raise ConfigError(
                f"store {self.name!r}: value must be a pydantic model class or None "
                f"(plain values), not {self.value!r}"
            )

    def changelog(self, group: str) -> str:
        """The compacted topic this store's changes go to, for the processor's group."""
        return changelog_topic(group, self.name)

    def encode(self, value: ValueT) -> bytes:
        model = self.value
        if model is not None:
            if not isinstance(value, model):
                raise StoreValueError(
                    f"store {self.name!r} keeps {model.__name__} values, given a "
                    f"{type(value).__name__}"
                )
            return value.model_dump_json().encode()  # type: ignore[attr-defined, no-any-return]
        if isinstance(value, Decimal):
            return _packed_decimal(value)  # the common case of money, without msgpack's hook
        try:
            return msgpack.packb(value, default=_encode_extension, strict_types=False)
        except (TypeError, ValueError) as exc:
            raise StoreValueError(
                f"store {self.name!r} cannot keep a {type(value).__name__}: plain stores take "
                "int, float, str, bool, bytes, Decimal, None and lists and dicts of them; "
                "declare Store(name, value=SomeModel) for structured values"
            ) from exc

    def decode(self, raw: bytes) -> ValueT:
        model = self.value
        try:
            if model is not None:
                return model.model_validate_json(raw)  # type: ignore[attr-defined, no-any-return]
            return msgpack.unpackb(raw, ext_hook=_decode_extension, strict_map_key=False)  # type: ignore[no-any-return]
        except (ValidationError, ValueError, msgpack.ExtraData) as exc:
            raise StoreValueError(
                f"store {self.name!r} holds a value it cannot read ({exc}); was the store's "
                "value type changed? Declare a new store name for a new type"
            ) from exc


def changelog_topic(group: str, store: str) -> str:
    return f"{group}-{store}{CHANGELOG_SUFFIX}"


def encode_key(key: str | bytes) -> bytes:
    """Store keys are text or bytes; the changelog record's key is these bytes."""
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    raise StoreValueError(f"a store key must be str or bytes, not {type(key).__name__}")


def _encode_extension(value: Any) -> msgpack.ExtType:
    if isinstance(value, Decimal):
        return msgpack.ExtType(_DECIMAL_EXT, str(value).encode())
    raise TypeError(f"cannot keep {type(value).__name__}")


_FIXEXT = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}


def _packed_decimal(value: Decimal) -> bytes:
    """The bytes packb writes for the decimal through the default hook (a fixext or an ext 8
    around its text), written directly: the hook costs more than the rest of a store write."""
    text = str(value).encode()
    fixed = _FIXEXT.get(len(text))
    if fixed is not None:
        return bytes((fixed, _DECIMAL_EXT)) + text
    if len(text) <= 255:
        return bytes((0xC7, len(text), _DECIMAL_EXT)) + text
    return msgpack.packb(msgpack.ExtType(_DECIMAL_EXT, text))


def _decode_extension(code: int, data: bytes) -> Any:
    if code == _DECIMAL_EXT:
        return Decimal(data.decode())
    return msgpack.ExtType(code, data)
