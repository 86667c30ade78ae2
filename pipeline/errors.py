"""Errors a user can act on.

Each one names what it is about (topic, partition, offset, field, line) and
says what to do, so CLI commands can print `str(error)` and nothing else.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error this library raises on purpose."""


class InfraError(PipelineError):
    """A local service (Kafka, PostgreSQL) could not be fetched, started or reached."""


class ConfigError(PipelineError):
    """Settings or the catalogue are inconsistent."""


class UnknownTopicError(PipelineError):
    def __init__(self, topic: str, known: list[str]) -> None:
        self.topic = topic
        self.known = known
        super().__init__(
            f"unknown topic {topic!r}: it is not in the catalogue. "
            f"Known topics: {', '.join(sorted(known)) or '(none)'}. "
            "Declare it in the catalogue module (PIPELINE_CATALOGUE_MODULE, `topics` by "
            "default) and run `pipeline topics apply`."
        )


class WrongEventTypeError(PipelineError):
    def __init__(self, topic: str, expected: str, got: str) -> None:
        self.topic = topic
        super().__init__(
            f"topic {topic!r} carries {expected} events, not {got}; "
            f"publish a {expected} or pick the topic declared for {got}."
        )


class MissingKeyError(PipelineError):
    def __init__(self, topic: str, key_field: str) -> None:
        self.topic = topic
        self.field = key_field
        super().__init__(
            f"topic {topic!r} is keyed by field {key_field!r}, which is empty on this event; "
            "every event needs a key so that events of one key stay in order."
        )


class EventDecodeError(PipelineError):
    """A record that cannot become an event; it belongs in the DLQ, with this reason."""

    def __init__(
        self,
        reason: str,
        *,
        topic: str,
        partition: int | None = None,
        offset: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.field = field
        where = f"topic {topic!r}"
        if partition is not None:
            where += f" partition {partition}"
        if offset is not None:
            where += f" offset {offset}"
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {reason}")


class UndecodableRecordError(EventDecodeError):
    """The bytes are not msgpack (or not a map): no field can be named."""


class EventValidationError(EventDecodeError):
    """The bytes decode but do not fit the topic's event model."""


class SchemaVersionError(EventDecodeError):
    """A body of a schema version this consumer cannot read (pipeline.wire.versions)."""


class EnvelopeError(EventDecodeError):
    """The record's key or headers contradict its body or its topic (pipeline.wire.envelope)."""


class OutputTooLargeError(PipelineError):
    """A handler's output does not fit its topic's max.message.bytes: retrying cannot help."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        self.topic = topic
        self.size = size
        self.limit = limit
        super().__init__(
            f"an output for topic {topic!r} would be a {size:,}-byte record, over the topic's "
            f"max.message.bytes of {limit:,}; make the output smaller or raise the topic's "
            "limit (TopicSpec.max_message_bytes, then `pipeline topics apply`)"
        )


class NotAcknowledgedError(PipelineError):
    """The broker did not acknowledge a batch: the broker's failure, not the records'."""

    def __init__(self, topic: str, partition: int, count: int, error: BaseException) -> None:
        self.topic = topic
        self.partition = partition
        super().__init__(
            f"the broker did not acknowledge {count} records for topic {topic!r} partition "
            f"{partition}: {type(error).__name__}: {error}. They may or may not be stored; "
            "publishing them again is safe for consumers that deduplicate by event-id."
        )
        self.__cause__ = error


class TopicPlanError(PipelineError):
    """The cluster cannot be brought to the catalogue without losing something."""
