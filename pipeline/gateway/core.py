"""The gateway's core: validate against the catalogue, publish with acks=all, answer.

Stateless by design: any process behind the load balancer can take any
request (the idempotency window is a per-process optimisation on top of
ids derived from the key). A request answered with an error has published
nothing: the whole batch is validated, and the producer's room is checked,
before the first record is handed to the client. The HTTP side is
pipeline.gateway.app (FastAPI) and pipeline.gateway.fast_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from pipeline.catalogue import Catalogue, TopicSpec
from pipeline.gateway.auth import KeyRing
from pipeline.gateway.contract import EventContract
from pipeline.gateway.errors import GatewayError
from pipeline.gateway.idempotency import IdempotencyWindow, event_id_for
from pipeline.metrics import Metrics, labels_of
from pipeline.publishing.delivery import Delivery
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.breaker import (
    BreakerPolicy,
    CircuitBreaker,
    DependencyError,
    DependencyUnavailable,
)
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.resilience.waiting import until_done
from pipeline.settings import PipelineSettings
from pipeline.telemetry import tracing
from pipeline.wire.codec import EncodedEvent, encode_events, payload_size
from pipeline.wire.registry import REGISTRY_FORMATS, registry_for

log = logging.getLogger("pipeline.gateway")
RECONNECT_S = 2.0


@dataclass
class Gateway:
    settings: PipelineSettings
    catalogue: Catalogue
    metrics: Metrics = field(default_factory=lambda: Metrics("pipeline_gateway"))
    producer: EventProducer | None = None
    breaker: CircuitBreaker = field(
        default_factory=lambda: CircuitBreaker("kafka", BreakerPolicy(minimum_calls=20))
    )
    """Opens on an outage (half the calls of the last 10 s failing), not on a few timeouts."""

    def __post_init__(self) -> None:
        tuning = self.settings.gateway
        self.keys = KeyRing(tuning.api_keys)
        self.idempotency = IdempotencyWindow(
            tuning.idempotency_window_s, tuning.idempotency_max_keys
        )
        self._connector: asyncio.Task[None] | None = None
        self.contracts = {
            spec.name: EventContract.of(spec.event_model)
            for spec in self.catalogue
            if not spec.is_dlq
        }
        self.unavailable_log = RateLimitedLog(log, "503 answers")
        self.metrics.gauge(
            "breaker_state",
            lambda: {labels_of(dependency=self.breaker.name): float(self.breaker.state.level)},
        )

    # -- the producer, connected in the background ----------------------------------

    async def start(self) -> None:
        if self.keys.open:
            log.warning("no API keys configured: anyone who reaches this port can publish")
        self._connector = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        """Connect in the background until the brokers answer; requests get 503 meanwhile."""

        async def attempt() -> EventProducer:
            producer = EventProducer(self.settings)
            try:
                await asyncio.wait_for(producer.start(), 10)
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            return producer

        def failed(exc: BaseException, failures: int, delay: float) -> None:
            log.warning("cannot reach the brokers (%s); retrying in %.0fs", exc, delay)

        self.producer = await until_done(
            attempt, retry_on=Exception, delay_s=lambda _: RECONNECT_S, on_failure=failed
        )
        log.info("connected to %s", self.settings.bootstrap_servers)

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        if self.producer is not None:
            await self.producer.stop()  # flushes what is still lingering

    async def ready(self) -> tuple[bool, str]:
        if self.producer is None:
            return False, "not connected to the brokers yet"
        first = next(iter(self.catalogue), None)
        if first is None:
            return False, "the catalogue is empty"
        try:
            await asyncio.wait_for(self.producer.partition_count(first.name, wait_s=1), 3)
        except Exception as exc:  # noqa: BLE001 - any failure means: not ready
            return False, f"metadata for {first.name} unavailable: {exc}"
        return True, "ready"

    def rejected(self, error: GatewayError, method: str, path: str) -> None:
        """Count a refused request by reason; say why a 503 happened (rate-limited)."""
        self.metrics.inc("rejections", labels={"reason": error.reason})
        if error.status == 503:
            self.unavailable_log.log(
                logging.WARNING, "503 %s for %s %s: %s", error.reason, method, path, error.message
            )

    # -- publishing --------------------------------------------------------------------

    def spec_for(self, topic: str) -> TopicSpec[BaseModel]:
        for spec in self.catalogue:
            if spec.name == self.catalogue.prefix + topic and not spec.is_dlq:
                return spec
        raise GatewayError(
            404,
            "unknown_topic",
            f"no topic {topic!r} in the catalogue; GET /v1/topics lists them",
        )

    def validate(self, spec: TopicSpec[BaseModel], raw: list[Any]) -> list[BaseModel]:
        """Each item against the schema the document publishes, then its model (contract.py);
        every problem of every item in one 422, as nothing is published unless all pass."""
        events: list[BaseModel] = []
        problems: list[dict[str, Any]] = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                reason = "an event must be an object"
                problems.append(
                    {"index": index, "errors": [{"field": "(event)", "reason": reason}]}
                )
                continue
            built = self.contracts[spec.name].build(item)
            if isinstance(built, list):
                problems.append({"index": index, "errors": built})
            else:
                events.append(built)
        if problems:
            raise GatewayError(
                422,
                "validation",
                f"{len(problems)} of {len(raw)} event(s) are invalid; nothing was published",
                items=problems,
            )
        return events

    async def publish(
        self,
        topic: str,
        spec: TopicSpec[BaseModel],
        events: list[BaseModel],
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        producer = self.producer
        if producer is None:
            raise GatewayError(
                503,
                "broker_unreachable",
                "the brokers cannot be reached yet",
                headers={"Retry-After": str(math.ceil(RECONNECT_S))},
            )
        ids = (
            [event_id_for(idempotency_key, topic, i) for i in range(len(events))]
            if idempotency_key
            else None
        )
        if spec.format in REGISTRY_FORMATS:
            await self._schema_ready(spec)
        with tracing.producing(spec.name, len(events)) as traceparent:
            encoded = encode_events(spec, events, event_ids=ids, traceparent=traceparent)
            return await self._publish_encoded(producer, topic, spec, encoded)

    async def _schema_ready(self, spec: TopicSpec[BaseModel]) -> None:
        """The avro topic's schema id, before encoding; a 503 while the registry is down."""
        try:
            await registry_for(spec).prepare(spec)
        except DependencyError as exc:
            raise GatewayError(
                503,
                "schema_registry_unavailable",
                f"the schema registry does not answer for {spec.name!r}; retry shortly",
                headers={"Retry-After": str(math.ceil(RECONNECT_S))},
            ) from exc

    async def _publish_encoded(
        self,
        producer: EventProducer,
        topic: str,
        spec: TopicSpec[BaseModel],
        encoded: list[EncodedEvent],
    ) -> dict[str, Any]:
        size = sum(payload_size(item) for item in encoded)
        if not producer.has_room(size):
            raise GatewayError(
                503,
                "buffer_full",
                "the producer's buffer is full; retry shortly",
                headers={"Retry-After": "1"},
            )
        timeout = self.settings.gateway.publish_timeout_s

        async def publish() -> Sequence[Delivery]:
            # A deadline on this task, not wait_for's extra task per request.
            async with asyncio.timeout(timeout):
                return await producer.publish_coalesced(spec.name, encoded)

        try:
            deliveries = await self.breaker.call(publish)
        except DependencyUnavailable as exc:
            raise GatewayError(
                503,
                "broker_unavailable",
                "publishing is paused after repeated broker failures",
                headers={"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))},
            ) from None
        except DependencyError as exc:
            cause = exc.__cause__
            why = (
                f"no acknowledgement within {timeout:g}s (PIPELINE_GATEWAY__PUBLISH_TIMEOUT_S)"
                if isinstance(cause, TimeoutError)
                else f"{type(cause).__name__}: {cause}"
            )
            raise GatewayError(
                503,
                "broker_error",
                f"the brokers did not acknowledge: {why}; the events may or may not be stored",
                headers={"Retry-After": "5"},
            ) from None
        self.metrics.inc("events_published", len(encoded), {"topic": topic})
        return {
            "topic": topic,
            "events": [
                {"event_id": d.event_id, "partition": d.partition, "offset": d.offset}
                for d in deliveries
            ],
        }
