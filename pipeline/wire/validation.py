"""A body that decoded but does not fit its model: the error that names the field."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.errors import EventValidationError


def invalid_event(
    spec: TopicSpec[BaseModel], exc: ValidationError, partition: int | None, offset: int | None
) -> EventValidationError:
    """The first problem pydantic found, with its field, and how many more there were.

    Every format ends here, so a bad `cents` reads the same whether it came
    as msgpack or JSON.
    """
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return EventValidationError(
        f"{first['msg']}{more}; expected {spec.event_model.__name__} "
        f"schema version {spec.schema_version}",
        field=field,
        topic=spec.name,
        partition=partition,
        offset=offset,
    )
