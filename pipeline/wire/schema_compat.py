"""Whether events of one JSON Schema can be read by a model of another, and where not.

A topic's readers and writers change at different times: during a deploy
old consumers read new events and new consumers read old ones, and a
replay reads events months old. The check is the reader's: can every
document the writer's schema allows pass the reader's validation? It is
run on the schemas pydantic generates, field by field, so that the
answer names the field and what to do instead.

Modes (per topic): `backward`, a new consumer reads old events (reader =
new, writer = old); `forward`, an old consumer reads new events; `full`,
both; `none`, no check. Removing a field is backward compatible (the new
reader ignores it in old events) and forward incompatible when old
readers required it; renaming a required field breaks both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

CompatibilityMode = Literal["backward", "forward", "full", "none"]
MODES: tuple[CompatibilityMode, ...] = ("backward", "forward", "full", "none")

Schema = Mapping[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


@dataclass(frozen=True)
class Difference:
    """One way the reader's schema refuses what the writer's allows."""

    path: str
    """The field, dotted; `[]` for an array's items: `lines[].quantity`."""
    problem: str
    advice: str
    direction: str = ""
    """Which readers break: "new consumers reading old events" or the reverse."""

    def line(self) -> str:
        who = f" ({self.direction})" if self.direction else ""
        return f"{self.path or '(the event)'}: {self.problem}{who}; {self.advice}"


def check(old: Schema, new: Schema, mode: CompatibilityMode) -> list[Difference]:
    """What breaks if a topic's schema changes from `old` to `new` under `mode`."""
    found: list[Difference] = []
    if mode in ("backward", "full"):
        found += _tagged(differences(reader=new, writer=old), "new consumers reading old events")
    if mode in ("forward", "full"):
        found += _tagged(differences(reader=old, writer=new), "old consumers reading new events")
    return found


def _tagged(found: list[Difference], direction: str) -> list[Difference]:
    return [Difference(d.path, d.problem, d.advice, direction) for d in found]


def differences(reader: Schema, writer: Schema) -> list[Difference]:
    """Where documents valid under `writer` can fail validation under `reader`."""
    return list(_compare(_Resolver(reader), reader, _Resolver(writer), writer, ""))


class _Resolver:
    """Follows `$ref`s into the schema's `$defs` (pydantic puts nested models there)."""

    def __init__(self, root: Schema) -> None:
        self.definitions: Mapping[str, Schema] = root.get("$defs", {})

    def resolve(self, node: Schema) -> Schema:
        seen = 0
        while "$ref" in node and seen < 64:
            name = str(node["$ref"]).rsplit("/", 1)[-1]
            node = {
                **self.definitions.get(name, {}),
                **{k: v for k, v in node.items() if k != "$ref"},
            }
            seen += 1
        return node

    def alternatives(self, node: Schema) -> list[Schema]:
        """anyOf/oneOf flattened; a plain schema is its own only alternative."""
        node = self.resolve(node)
        for union in ("anyOf", "oneOf"):
            if union in node:
                rest = {k: v for k, v in node.items() if k != union}
                return [
                    alternative
                    for branch in node[union]
                    for alternative in self.alternatives({**rest, **branch})
                ]
        return [node]


def _types(node: Schema) -> set[str]:
    declared = node.get("type")
    if declared is None:
        if "const" in node:
            return {_json_type(node["const"])}
        if "enum" in node:
            return {_json_type(value) for value in node["enum"]}
        if "properties" in node:
            return {"object"}
        return {"any"}
    return set(declared) if isinstance(declared, list) else {str(declared)}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _accepts_type(reader: set[str], written: str) -> bool:
    return "any" in reader or written in reader or (written == "integer" and "number" in reader)


def _values(node: Schema) -> list[object] | None:
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    return None


def _compare(
    rr: _Resolver, reader: Schema, wr: _Resolver, writer: Schema, path: str
) -> Iterator[Difference]:
    readers = rr.alternatives(reader)
    for written in wr.alternatives(writer):
        for written_type in sorted(_types(written)):
            fitting = [r for r in readers if _accepts_type(_types(r), written_type)]
            if not fitting:
                yield _type_refused(path, written_type, readers)
                continue
            # The closest alternative answers for the rest (pydantic: one per type).
            yield from _compare_one(rr, fitting[0], wr, written, written_type, path)


def _type_refused(path: str, written_type: str, readers: list[Schema]) -> Difference:
    accepted = sorted({t for r in readers for t in _types(r)})
    if written_type == "null":
        return Difference(
            path,
            "may be null in events, but the reader does not accept null",
            "keep it Optional (`X | None = None`) in the reader",
        )
    return Difference(
        path,
        f"is {written_type} in events, the reader accepts only {', '.join(accepted)}",
        "keep the type, or add a field with the new type and a default (old events "
        "keep theirs) and move readers over before writers",
    )


def _compare_one(
    rr: _Resolver,
    reader: Schema,
    wr: _Resolver,
    writer: Schema,
    written_type: str,
    path: str,
) -> Iterator[Difference]:
    allowed, sent = _values(reader), _values(writer)
    if allowed is not None:
        if sent is None:
            yield Difference(
                path,
                f"takes only {_listing(allowed)} in the reader, any {written_type} in events",
                "let the reader accept any value, or restrict the writer first",
            )
        elif missing := [value for value in sent if value not in allowed]:
            yield Difference(
                path,
                f"may be {_listing(missing)} in events, which the reader does not accept",
                "keep the old values in the reader's Literal/Enum (add, never remove)",
            )
    yield from _bounds(reader, writer, path)
    if written_type == "object":
        yield from _compare_objects(rr, reader, wr, writer, path)
    elif written_type == "array" and "items" in writer and "items" in reader:
        yield from _compare(rr, reader["items"], wr, writer["items"], f"{path}[]")


def _bounds(reader: Schema, writer: Schema, path: str) -> Iterator[Difference]:
    for key in _LOWER_BOUNDS:
        if key in reader and (key not in writer or writer[key] < reader[key]):
            yield _narrowed(path, key, reader[key], writer.get(key))
    for key in _UPPER_BOUNDS:
        if key in reader and (key not in writer or writer[key] > reader[key]):
            yield _narrowed(path, key, reader[key], writer.get(key))
    if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
        yield _narrowed(path, "pattern", reader["pattern"], writer.get("pattern"))


def _narrowed(path: str, key: str, reading: object, writing: object) -> Difference:
    was = "none" if writing is None else repr(writing)
    return Difference(
        path,
        f"{key} is {reading!r} in the reader, {was} in events: a narrower type",
        "keep the bound as wide as every event already written",
    )


def _compare_objects(
    rr: _Resolver, reader: Schema, wr: _Resolver, writer: Schema, path: str
) -> Iterator[Difference]:
    reading: Mapping[str, Schema] = reader.get("properties", {})
    written: Mapping[str, Schema] = writer.get("properties", {})
    always_sent = set(writer.get("required", ()))
    required = list(reader.get("required", ()))
    never_sent = [name for name in required if name not in written]
    only_written = [name for name in written if name not in reading]
    for name in required:
        field = f"{path}.{name}" if path else name
        if name in never_sent:
            renamed = [n for n in only_written if _same_shape(written[n], reading[name])]
            hint = f" (renamed from {renamed[0]!r}?)" if renamed else ""
            yield Difference(
                field,
                f"is required by the reader and absent from events{hint}",
                "give it a default, or add an upcaster that fills it in; to rename, keep "
                "the old name with an alias (Field(validation_alias=AliasChoices(new, old)))",
            )
        elif name not in always_sent:
            yield Difference(
                field,
                "is required by the reader and may be left out of events",
                "give it a default in the reader",
            )
    if reader.get("additionalProperties") is False:
        for name in only_written:
            yield Difference(
                f"{path}.{name}" if path else name,
                "is in events, and the reader forbids fields it does not know",
                "let the reader ignore unknown fields (model_config extra='ignore')",
            )
    for name in sorted(set(reading) & set(written)):
        yield from _compare(
            rr, reading[name], wr, written[name], f"{path}.{name}" if path else name
        )


def _same_shape(one: Schema, other: Schema) -> bool:
    """Alike enough to be the same field renamed: a type in common, the same allowed values."""
    shared = _all_types(one) & _all_types(other)
    return bool(shared - {"null"}) and _values(one) == _values(other)


def _all_types(node: Schema) -> set[str]:
    for union in ("anyOf", "oneOf"):
        if union in node:
            return {t for branch in node[union] for t in _all_types(branch)}
    return _types(node)


def _listing(values: list[object]) -> str:
    shown = ", ".join(repr(v) for v in values[:6])
    return shown + (f" and {len(values) - 6} more" if len(values) > 6 else "")
