"""The Avro schema of an event model: derived, so the pydantic model stays the one description.

The mapping, field type by field type (docs/concepts/topics.md has it for users):

| Python | Avro |
|---|---|
| `str` | `string` |
| `int` | `long` |
| `float` | `double` |
| `bool` | `boolean` |
| `bytes` | `bytes` |
| `Decimal` | `bytes`, logical `decimal`; precision `max_digits` (38), scale `decimal_places` (9) |
| `datetime` | `long`, logical `timestamp-micros` (a naive datetime is taken as UTC) |
| `date` | `int`, logical `date` |
| `UUID` | `string`, logical `uuid` |
| an `Enum` of strings that are Avro names | `enum` named after the class |
| any other `Enum` | the type of its values |
| a nested `BaseModel` | `record` named after the class (defined once, then named) |
| `list[X]`, `tuple[X, ...]`, `set[X]` | `array` of X |
| `dict[str, X]` | `map` of X |
| `X | None` | `["null", X]`, default null when the field's default is None |
| `Literal["a", "b"]` | `string` |
| `X | Y` | a union of X and Y |

A field's default is kept when Avro can say it (null, strings, numbers,
booleans, empty lists and maps), so a field added with a default is a
backward-compatible change in the registry's eyes too. Anything else has no
mapping and is refused at once, naming the model, the field and the type.
"""

from __future__ import annotations

import datetime as dt
import re
import types
import uuid
from collections.abc import Iterable
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipeline.errors import ConfigError

DEFAULT_PRECISION = 38
DEFAULT_SCALE = 9
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIMITIVES: dict[Any, str] = {
    str: "string",
    int: "long",
    float: "double",
    bool: "boolean",
    bytes: "bytes",
}

AvroType = str | dict[str, Any] | list[Any]


def avro_schema(model: type[BaseModel], name: str = "") -> dict[str, Any]:
    """The model as an Avro record schema (a dict, ready for json.dumps).

    `name` is the record's full name (a topic's `event_type`): Avro matches a
    writer's record to a reader's by name, so it must outlive a renamed class.
    Nested records keep their class names.
    """
    schema = _Deriver(model).record(model)
    if name and all(_NAME.match(part) for part in name.split(".")):
        schema["name"] = name
    return schema


class _Deriver:
    def __init__(self, root: type[BaseModel]) -> None:
        self.root = root
        self.defined: set[str] = set()

    def record(self, model: type[BaseModel]) -> dict[str, Any]:
        self.defined.add(model.__name__)
        fields = []
        for name, info in model.model_fields.items():
            avro_name = info.alias or name
            if not _NAME.match(avro_name):
                raise self._refuse(model, name, f"the name {avro_name!r} is not an Avro name")
            field: dict[str, Any] = {"name": avro_name, "type": self.field_type(model, name, info)}
            default = _avro_default(info)
            if default is not _NO_DEFAULT:
                field["type"] = _default_first(field["type"], default)
                field["default"] = default
            fields.append(field)
        return {"type": "record", "name": model.__name__, "fields": fields}

    def field_type(self, model: type[BaseModel], name: str, info: FieldInfo) -> AvroType:
        if info.annotation is Decimal:
            return _decimal(info.metadata)
        return self.of(model, name, info.annotation)

    def of(self, model: type[BaseModel], name: str, annotation: Any) -> AvroType:
        origin = get_origin(annotation)
        if origin is Annotated:
            base, *constraints = get_args(annotation)
            return _decimal(constraints) if base is Decimal else self.of(model, name, base)
        if annotation in _PRIMITIVES:
            return _PRIMITIVES[annotation]
        if annotation is Decimal:
            return _decimal(())
        if annotation is dt.datetime:
            return {"type": "long", "logicalType": "timestamp-micros"}
        if annotation is dt.date:
            return {"type": "int", "logicalType": "date"}
        if annotation is uuid.UUID:
            return {"type": "string", "logicalType": "uuid"}
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            return self.enum(model, name, annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation.__name__ in self.defined:
                return annotation.__name__
            return self.record(annotation)
        if origin in (Union, types.UnionType):
            branches = [self.of(model, name, arg) for arg in get_args(annotation)]
            nulls = [b for b in branches if b == "null"]
            return nulls + [b for b in branches if b != "null"]
        if annotation is type(None):
            return "null"
        if origin is Literal:
            if all(isinstance(value, str) for value in get_args(annotation)):
                return "string"
            raise self._refuse(model, name, "a Literal of other than strings")
        if origin in (list, set, frozenset) or (
            origin is tuple and len(get_args(annotation)) == 2 and get_args(annotation)[1] is ...
        ):
            return {"type": "array", "items": self.of(model, name, get_args(annotation)[0])}
        if origin is dict:
            key, value = get_args(annotation)
            if key is not str:
                raise self._refuse(model, name, "a dict whose keys are not strings")
            return {"type": "map", "values": self.of(model, name, value)}
        raise self._refuse(model, name, f"the type {annotation!r}")

    def enum(self, model: type[BaseModel], name: str, enum: type[Enum]) -> AvroType:
        values = [member.value for member in enum]
        if all(isinstance(v, str) and _NAME.match(v) for v in values):
            if enum.__name__ in self.defined:
                return enum.__name__
            self.defined.add(enum.__name__)
            return {"type": "enum", "name": enum.__name__, "symbols": values}
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and next(iter(kinds)) in _PRIMITIVES:
            return _PRIMITIVES[next(iter(kinds))]
        raise self._refuse(model, name, f"the enum {enum.__name__} of mixed value types")

    def _refuse(self, model: type[BaseModel], name: str, what: str) -> ConfigError:
        return ConfigError(
            f"{self.root.__name__}: field {model.__name__}.{name} has no Avro mapping ({what}); "
            "use str, int, float, bool, bytes, Decimal, datetime, date, UUID, an Enum, "
            "a nested model, a list, a dict with str keys, or an optional of one of them "
            "(pipeline/wire/avro_schema.py has the mapping)"
        )


def _decimal(constraints: Iterable[object]) -> dict[str, Any]:
    precision, scale = DEFAULT_PRECISION, DEFAULT_SCALE
    for constraint in constraints:
        precision = getattr(constraint, "max_digits", None) or precision
        scale = getattr(constraint, "decimal_places", None) or scale
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


_NO_DEFAULT = object()


def _avro_default(info: FieldInfo) -> Any:
    default = info.default
    if default is PydanticUndefined:
        factory = info.default_factory
        if factory is list or factory is dict:
            return factory()
        return _NO_DEFAULT
    if default is None or isinstance(default, str | bool | int | float):
        return default
    if isinstance(default, Enum) and isinstance(default.value, str):
        return default.value
    return _NO_DEFAULT


def _default_first(avro_type: AvroType, default: Any) -> AvroType:
    """A union's default must be of its first branch (Avro's rule): put that branch first."""
    if not isinstance(avro_type, list):
        return avro_type
    wanted = "null" if default is None else None
    if wanted is None:
        return [b for b in avro_type if b != "null"] + [b for b in avro_type if b == "null"]
    return avro_type
