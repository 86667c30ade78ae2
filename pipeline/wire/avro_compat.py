"""Which field of a new Avro schema breaks compatibility with the registered one, and why.

The registry's verdict (its compatibility test) decides; this names the
field, which the verdict does not: Confluent's verbose messages differ per
registry and Apicurio's ccompat answers only true or false. The rules are
Avro's schema resolution, top-level record fields only:

- backward (the new schema reads old records): a field added without a
  default, or a field whose type changed, breaks it;
- forward (old readers read new records): a field removed that had no
  default, or a type changed;
- full: both; none: nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_WIDENINGS = {("int", "long"), ("int", "float"), ("int", "double"), ("long", "float")}
_WIDENINGS |= {("long", "double"), ("float", "double"), ("string", "bytes"), ("bytes", "string")}


def breaking_fields(registered: Mapping[str, Any], new: Mapping[str, Any], mode: str) -> list[str]:
    """One line per field that breaks `mode` (backward, forward, full, none)."""
    old_fields = {f["name"]: f for f in registered.get("fields", [])}
    new_fields = {f["name"]: f for f in new.get("fields", [])}
    problems: list[str] = []
    if mode in ("backward", "full"):
        for name, field in new_fields.items():
            if name not in old_fields and "default" not in field:
                problems.append(
                    f"field {name!r} was added without a default: records written before it "
                    "cannot be read; give it a default"
                )
    if mode in ("forward", "full"):
        for name, field in old_fields.items():
            if name not in new_fields and "default" not in field:
                problems.append(
                    f"field {name!r} was removed but has no default in the registered schema: "
                    "readers still on it cannot read new records"
                )
    if mode != "none":
        for name in old_fields.keys() & new_fields.keys():
            before, after = old_fields[name]["type"], new_fields[name]["type"]
            if not _same_type(before, after) and (_name(before), _name(after)) not in _WIDENINGS:
                problems.append(
                    f"field {name!r} changed type from {_shown(before)} to {_shown(after)}"
                )
    return sorted(problems)


def _same_type(before: Any, after: Any) -> bool:
    return json.dumps(_without_docs(before), sort_keys=True) == json.dumps(
        _without_docs(after), sort_keys=True
    )


def _without_docs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_docs(v) for k, v in value.items() if k not in ("doc", "default")}
    if isinstance(value, list):
        return [_without_docs(v) for v in value]
    return value


def _name(avro_type: Any) -> str:
    if isinstance(avro_type, str):
        return avro_type
    if isinstance(avro_type, dict) and "logicalType" not in avro_type:
        return str(avro_type.get("type"))
    return json.dumps(avro_type, sort_keys=True)


def _shown(avro_type: Any) -> str:
    text = json.dumps(avro_type) if not isinstance(avro_type, str) else avro_type
    return text if len(text) <= 80 else text[:79] + "…"
