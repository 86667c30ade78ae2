"""The gateway's ASGI app: validate against the catalogue, publish with acks=all, answer.

Stateless by design: any process behind the load balancer can take any
request (the idempotency window is a per-process optimisation on top of
ids derived from the key). A request answered with an error has published
nothing: the whole batch is validated, and the producer's room is checked,
before the first record is handed to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ValidationError

from pipeline.breaker import BreakerPolicy, CircuitBreaker, DependencyError, DependencyUnavailable
from pipeline.catalogue import Catalogue, TopicSpec, load_catalogue
from pipeline.client_logs import setup_process_logging
from pipeline.codec import encode_events, payload_size
from pipeline.delivery import Delivery
from pipeline.gateway.auth import KeyRing
from pipeline.gateway.errors import GatewayError, field_errors
from pipeline.gateway.idempotency import IdempotencyWindow, event_id_for
from pipeline.log_limit import RateLimitedLog
from pipeline.metrics import Metrics, labels_of
from pipeline.producer import EventProducer
from pipeline.settings import PipelineSettings, load_settings
from pipeline.topic_metadata import partition_count

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
        self.unavailable_log = RateLimitedLog(log, "503 answers")
        self.metrics.gauge(
            "breaker_state",
            lambda: {labels_of(dependency=self.breaker.name): float(self.breaker.state.level)},
            "the brokers' circuit: 0 closed, 1 half-open (probing), 2 open",
        )

    # -- the producer, connected in the background ----------------------------------

    async def start(self) -> None:
        if self.keys.open:
            log.warning("no API keys configured: anyone who reaches this port can publish")
        self._connector = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        while self.producer is None:
            producer = EventProducer(self.settings)
            try:
                await asyncio.wait_for(producer.start(), 10)
                self.producer = producer
                log.info("connected to %s", self.settings.bootstrap_servers)
            except Exception as exc:  # noqa: BLE001 - retried; requests get 503 meanwhile
                log.warning("cannot reach the brokers (%s); retrying", exc)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(RECONNECT_S)

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
            await asyncio.wait_for(
                partition_count(self.producer.client.client, first.name, wait_s=1), 3
            )
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

    def spec_for(self, topic: str) -> TopicSpec:
        for spec in self.catalogue:
            if spec.name == self.catalogue.prefix + topic:
                return spec
        raise GatewayError(
            404,
            "unknown_topic",
            f"no topic {topic!r} in the catalogue; GET /v1/topics lists them",
        )

    def validate(self, spec: TopicSpec, raw: list[Any]) -> list[BaseModel]:
        events: list[BaseModel] = []
        problems: list[dict[str, Any]] = []
        for index, item in enumerate(raw):
            if not isinstance(item, dict):
                reason = "an event must be an object"
                problems.append(
                    {"index": index, "errors": [{"field": "(event)", "reason": reason}]}
                )
                continue
            try:
                events.append(spec.event_model.model_validate(item))
            except ValidationError as exc:
                problems.append({"index": index, "errors": field_errors(exc)})
        if problems:
            raise GatewayError(
                422,
                "validation",
                f"{len(problems)} of {len(raw)} event(s) are invalid; nothing was published",
                items=problems,
            )
        return events

    async def publish(
        self, topic: str, spec: TopicSpec, events: list[BaseModel], idempotency_key: str | None
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
        encoded = encode_events(spec, events, event_ids=ids)
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
        self.metrics.inc("events_published", len(events), {"topic": topic})
        return {
            "topic": topic,
            "events": [
                {"event_id": d.event_id, "partition": d.partition, "offset": d.offset}
                for d in deliveries
            ],
        }


def create_app(settings: PipelineSettings | None = None) -> Any:
    """The ASGI app for uvicorn (`pipeline gateway` runs it with factory=True).

    Outermost the request metrics, then the publish routes' fast path
    (pipeline.gateway.fast_path), then FastAPI for everything else.
    """
    settings = settings or load_settings()
    setup_process_logging("INFO", who=f"gateway-{os.getpid()}")
    catalogue = load_catalogue(settings.catalogue_module, settings.topic_prefix)
    gateway = Gateway(settings, catalogue)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title="pipeline ingest gateway",
        version="1",
        description="Publish events to the catalogue's topics over HTTP.",
        lifespan=lifespan,
    )
    from pipeline.gateway.fast_path import FastPublish
    from pipeline.gateway.routes import install

    handle, routes = install(app, gateway)

    @app.exception_handler(GatewayError)
    async def on_gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        gateway.rejected(exc, request.method, request.url.path)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_request_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        error = GatewayError(
            400,
            "malformed_request",
            "the request is malformed",
            items=[
                {
                    "errors": [
                        {"field": ".".join(map(str, e["loc"])), "reason": e["msg"]}
                        for e in exc.errors()
                    ]
                }
            ],
        )
        gateway.metrics.inc("rejections", labels={"reason": error.reason})
        return JSONResponse(error.body(), status_code=400)

    @app.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
    async def healthz() -> str:
        return "ok\n"

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> PlainTextResponse:
        ready, why = await gateway.ready()
        return PlainTextResponse(why + "\n", status_code=200 if ready else 503)

    @app.get("/metrics", response_class=PlainTextResponse, include_in_schema=False)
    async def metrics() -> str:
        return gateway.metrics.render()

    return Measured(FastPublish(app, gateway, handle, routes), gateway.metrics)


class Measured:
    """Requests by route and status, and their latency, around the whole app.

    Plain ASGI: Starlette's `@app.middleware("http")` runs each request
    through extra tasks and streams, a cost paid on every request of a
    gateway whose answers are a few hundred bytes.
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.inc("requests", labels={"route": path, "status": str(status)})
            self.metrics.observe("request_seconds", time.perf_counter() - started, {"route": path})
