"""A topic's event contract: the JSON Schema the gateway publishes is the one it enforces.

Pydantic's own schema promises less than its lax validation takes (an
integer where the document says a date-time, `false` where it says an
integer) and more than it takes (any string for a decimal, `""` too). A
client generated from the document then sends what is refused and is
trusted with what it should not send. So each event is first checked
against the published schema (jsonschema-rs, formats asserted), then
built by its model; what the schema cannot say (a field validator of the
model) is the model's 422 as before.

Where pydantic's schema is too loose to check with, it is narrowed here:
a decimal's text is a plain decimal (no exponent, sign, blanks or
leading zeros) with the digits and places the model allows, and a decimal
limited in digits or places is text only: JSON Schema cannot state a
number's places exactly (`multipleOf: 0.01` is float arithmetic, and
57 × 0.01 is 0.5700000000000001 to a generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import jsonschema_rs
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from pipeline.gateway.errors import field_errors

COMPONENTS = "#/components/schemas/{model}"


INT64 = (-(2**63), 2**63 - 1)
"""What every wire format carries as an integer (msgpack, Avro's long, Protobuf's int64)."""


class PublishedSchema(GenerateJsonSchema):
    """Pydantic's validation schema, with decimals said as exactly as they are checked, and
    integers kept to what the topic's wire format can carry."""

    def int_schema(self, schema: core_schema.IntSchema) -> JsonSchemaValue:
        json_schema = super().int_schema(schema)
        low, high = INT64
        if "exclusiveMinimum" not in json_schema:
            json_schema["minimum"] = max(json_schema.get("minimum", low), low)
        if "exclusiveMaximum" not in json_schema:
            json_schema["maximum"] = min(json_schema.get("maximum", high), high)
        return json_schema

    def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
        json_schema = super().datetime_schema(schema)
        json_schema.setdefault(
            "description", "RFC 3339, with its offset: such as 2026-11-28T10:00:00Z"
        )
        return json_schema

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        digits, places = schema.get("max_digits"), schema.get("decimal_places")
        low = _lowest(schema)
        signed = low is None or low[0] < 0
        positive = low is not None and low[0] == 0 and not low[1]
        text: JsonSchemaValue = {
            "type": "string",
            "pattern": decimal_pattern(digits, places, signed=signed, positive=positive),
        }
        text["description"] = _decimal_words(digits, places)
        if _bounded_beyond_sign(schema):
            # Bounds a pattern cannot say: a number carries them exactly when places are free.
            if digits is None and places is None:
                return super().decimal_schema(schema)["anyOf"][0]  # type: ignore[no-any-return]
            text["description"] += f"; {_bounds(schema)}"
            return text
        if digits is not None or places is not None:
            return text
        return {"anyOf": [super().decimal_schema(schema)["anyOf"][0], text]}


def _lowest(schema: core_schema.DecimalSchema) -> tuple[Decimal, bool] | None:
    """The lower bound and whether it is inclusive; None when there is none."""
    if schema.get("ge") is not None:
        return Decimal(schema["ge"]), True
    if schema.get("gt") is not None:
        return Decimal(schema["gt"]), False
    return None


def _bounded_beyond_sign(schema: core_schema.DecimalSchema) -> bool:
    """Bounds other than `ge=0` or `gt=0`, which the pattern's sign says."""
    low = _lowest(schema)
    return (
        schema.get("le") is not None
        or schema.get("lt") is not None
        or schema.get("multiple_of") is not None
        or (low is not None and low[0] != 0)
    )


def _bounds(schema: core_schema.DecimalSchema) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "multiple_of": "a multiple of"}
    return ", ".join(
        f"{word} {schema[key]}"  # type: ignore[literal-required]
        for key, word in words.items()
        if schema.get(key) is not None
    )


def _decimal_words(digits: int | None, places: int | None) -> str:
    parts = ["no exponent, no leading zeros"]
    if digits is not None:
        parts.append(f"at most {digits} digits")
    if places is not None:
        parts.append(f"at most {places} after the point")
    return 'a decimal as text, such as "12.50": ' + ", ".join(parts)


def decimal_pattern(
    digits: int | None, places: int | None, *, signed: bool, positive: bool = False
) -> str:
    """The plain decimals (`12.50`, `0.5`, `-3`) within `digits` in all and `places` after the
    point, written one way only; `positive` leaves out every spelling of zero.

    Each is what pydantic takes for those limits: it counts the digits of
    the normalised value, so a whole part without leading zeros and a
    fraction of at most `places` digits fit exactly.
    """
    # A zero whole part leaves every digit to the fraction, within both limits; pydantic
    # counts a bare 0 as a whole digit, which a decimal of no whole digits may not have.
    limits = [limit for limit in (digits, places) if limit is not None]
    no_whole_digits = digits is not None and places is not None and digits <= places
    zero = _zero_whole(min(limits) if limits else None, positive or no_whole_digits, positive)
    if digits is not None and places is not None:
        wholes = ["[1-9]" + _digits_up_to(digits - places - 1) + _fraction(places)]
        wholes = wholes if digits > places else []
    elif digits is not None:
        # The digits shared out between the two sides one split at a time.
        wholes = [
            "[1-9]" + rf"[0-9]{{{n - 1}}}" * (n > 1) + _fraction(digits - n)
            for n in range(1, digits + 1)
        ]
    else:
        wholes = [rf"[1-9][0-9]*{_fraction(places)}"]
    alternatives = wholes + ([zero] if zero else [])
    return f"^{'-?' if signed else ''}(?:{'|'.join(alternatives)})$"


def _fraction(places: int | None) -> str:
    """An optional fraction of at most `places` digits (None: any number)."""
    if places == 0:
        return ""
    return r"(?:\.[0-9]+)?" if places is None else rf"(?:\.[0-9]{{1,{places}}})?"


def _digits_up_to(count: int) -> str:
    return rf"[0-9]{{0,{count}}}" if count > 0 else ""


def _zero_whole(places: int | None, fraction_needed: bool, positive: bool = False) -> str | None:
    """Nothing before the point but 0, and a fraction when `fraction_needed`: one with a
    digit other than 0 (its first such digit at each place in turn) when `positive`."""
    if not fraction_needed:
        return "0" + _fraction(places)
    if not positive and places != 0:
        return r"0\.[0-9]+" if places is None else rf"0\.[0-9]{{1,{places}}}"
    if places == 0:
        return None
    if places is None:
        return r"0\.0*[1-9][0-9]*"
    firsts = ("0" * zeros + "[1-9]" + _digits_up_to(places - zeros - 1) for zeros in range(places))
    return rf"0\.(?:{'|'.join(firsts)})"


@dataclass(frozen=True)
class EventContract:
    """One topic's model and the schema checked before it."""

    model: type[BaseModel]
    schema: dict[str, Any]
    checker: Any

    @classmethod
    def of(cls, model: type[BaseModel]) -> EventContract:
        schema = model.model_json_schema(schema_generator=PublishedSchema)
        return cls(model, schema, jsonschema_rs.validator_for(schema, validate_formats=True))

    def build(self, item: Any) -> BaseModel | list[dict[str, str]]:
        """The event, or what is wrong with it: each field's path and the reason."""
        try:
            problems = [
                {"field": _path(error), "reason": self._reason(error)}
                for error in self.checker.iter_errors(item)
            ]
        except (UnicodeEncodeError, ValueError, OverflowError):
            problems = [{"field": _unrepresentable(item), "reason": _UNREPRESENTABLE}]
        if problems:
            return problems
        try:
            return self.model.model_validate(item)
        except ValidationError as exc:
            return field_errors(exc)

    def _reason(self, error: Any) -> str:
        """The checker's words, with the rule's description (a decimal's digits and places),
        and for a value of several allowed forms why each form refused it."""
        branches = getattr(error.kind, "context", None)
        if branches:
            forms = ("; ".join(self._reason(sub) for sub in branch) for branch in branches)
            return "fits none of its allowed forms: " + " | ".join(forms)
        rule: Any = self.schema
        for part in list(error.schema_path)[:-1]:
            rule = rule[part] if isinstance(rule, dict | list) else None
        described = rule.get("description") if isinstance(rule, dict) else None
        return f"{error.message} ({described})" if described else str(error.message)


_UNREPRESENTABLE = (
    "holds a value JSON cannot carry: text with a lone surrogate (such as \\ud800), "
    "a number too large, or a key that is not text"
)


def _path(error: Any) -> str:
    return ".".join(str(part) for part in error.instance_path) or "(event)"


def _unrepresentable(value: Any, path: tuple[str, ...] = ()) -> str:
    """Where in the event the value the schema checker cannot read sits."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return ".".join(path) or "(event)"
    elif isinstance(value, float) and not math.isfinite(value):
        return ".".join(path) or "(event)"
    elif isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str):
                return ".".join(path) or "(event)"
            found = _unrepresentable(inner, (*path, key))
            if found:
                return found
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found = _unrepresentable(inner, (*path, str(index)))
            if found:
                return found
    return "" if path else "(event)"


def document_schemas(
    models: list[type[BaseModel]],
) -> tuple[dict[type[BaseModel], dict[str, str]], dict[str, Any]]:
    """Each model's reference, and every schema for the OpenAPI document's components.

    Generated together, so that two models of one name (two topics' `Event`,
    or nested types) are told apart rather than overwriting each other.
    """
    references, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template=COMPONENTS,
        schema_generator=PublishedSchema,
    )
    by_model = {model: dict(references[(model, "validation")]) for model in models}
    return by_model, dict(top.get("$defs", {}))
