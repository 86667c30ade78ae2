"""faust-streaming agents on this project's topics: typed events in, accepted events out.

Our records are a msgpack body and headers (`event-type`, `schema-version`,
`event-id`, `produced-at`) that faust's own codecs know nothing of. So a
faust app declares the topic as raw bytes (`catalogue_topic`) and

- reads typed events with `events(stream, spec)`: each record's body is
  decoded and validated exactly as our workers do it (pipeline.wire.codec),
  upcasters and schema versions included, so a faust agent and a worker
  agree on what a record means;
- publishes with `send(topic, spec, event)`: the body, key and headers our
  EventProducer would write, so our workers accept them as their own.

A record that is not a valid event goes to `on_invalid` (default: raise, as
faust does for a value it cannot deserialize); the faust app decides
whether to skip it, count it or stop. Installed with the `faust` extra.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import EventDecodeError
from pipeline.wire.codec import TopicEncoder, decode_value, new_event_ids
from pipeline.wire.versions import version_in

ModelT = TypeVar("ModelT", bound=BaseModel)


def catalogue_topic(app: Any, spec: TopicSpec[BaseModel], prefix: str = "") -> Any:
    """The spec's topic in a faust app: raw keys and values, never declared by faust.

    `topics apply` owns the topic (partitions, configs, its schema); faust
    declaring it would create it with faust's defaults on a new cluster.
    """
    return app.topic(
        prefix + spec.name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )


def _headers(message: Any) -> Sequence[tuple[str, bytes | None]]:
    headers = message.headers or ()
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def decode_message(spec: TopicSpec[ModelT], message: Any) -> ModelT:
    """One faust message as the spec's event, as a worker reads it (EventDecodeError if not)."""
    version = version_in(spec, _headers(message), message.partition, message.offset)
    return decode_value(  # type: ignore[return-value]
        spec, message.value, partition=message.partition, offset=message.offset, version=version
    )


def _raise(error: EventDecodeError, _message: Any) -> None:
    raise error


async def events(
    stream: Any,
    spec: TopicSpec[ModelT],
    on_invalid: Callable[[EventDecodeError, Any], None] = _raise,
) -> AsyncIterator[ModelT]:
    """A faust stream of raw records as typed events (acked as faust acks them)."""
    async for event in stream.events():
        try:
            yield decode_message(spec, event.message)
        except EventDecodeError as error:
            on_invalid(error, event.message)


async def send(
    topic: Any, spec: TopicSpec[ModelT], event: ModelT, event_id: str | None = None
) -> Any:
    """Publish `event` as EventProducer would: our workers read it as one of their own."""
    encoded = TopicEncoder(spec).encode(event, event_id or new_event_ids(1)[0])
    return await topic.send(key=encoded.key, value=encoded.value, headers=list(encoded.headers))
