"""The gateway's routes, one pair per catalogue topic, so the OpenAPI document has each model.

Bodies are read and validated by hand rather than by FastAPI: a batch may
be JSON, NDJSON or msgpack, errors must name the item and the field, and
nothing may be published unless every item is valid.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Header, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.gateway.bodies import JSON, MSGPACK, NDJSON, check_size, parse_batch, parse_single
from pipeline.gateway.contract import document_schemas
from pipeline.gateway.core import Gateway
from pipeline.gateway.fast_path import Handle

PUBLISHED = {
    "type": "object",
    "required": ["topic", "events"],
    "properties": {
        "topic": {"type": "string"},
        "events": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["event_id", "partition", "offset"],
                "properties": {
                    "event_id": {"type": "string"},
                    "partition": {"type": "integer", "minimum": 0},
                    "offset": {"type": "integer", "minimum": 0},
                },
            },
        },
        "replayed": {
            "type": "boolean",
            "description": "true when the Idempotency-Key was seen: the first answer, again",
        },
    },
}
FIELD_PROBLEM = {
    "type": "object",
    "required": ["field", "reason"],
    "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "reason", "message"],
            "properties": {
                "status": {"type": "integer"},
                "reason": {"type": "string", "description": "a stable code, such as validation"},
                "message": {"type": "string", "description": "what was wrong, and what to do"},
                "items": {
                    "type": "array",
                    "description": "per event of the request (index), each problem by field",
                    "items": {
                        "type": "object",
                        "required": ["errors"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "errors": {"type": "array", "items": FIELD_PROBLEM},
                        },
                    },
                },
            },
        }
    },
}
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same key as a bearer"},
}


def _responses(with_keys: bool) -> dict[int | str, dict[str, Any]]:
    """Every answer a publish route gives (core.py, bodies.py, auth.py), with its body."""
    described = {
        400: "malformed body",
        404: "unknown topic",
        413: "body or batch too large",
        415: "unsupported content type",
        422: "invalid event(s); nothing published",
        503: "broker unreachable, breaker open or buffer full; see Retry-After",
    }
    if with_keys:
        described[401] = "missing or unknown API key"
        described[403] = "the key may not publish to this topic"
    responses: dict[int | str, dict[str, Any]] = {
        200: {
            "description": "acknowledged by the brokers (acks=all)",
            "content": {JSON: {"schema": PUBLISHED}},
        }
    }
    for status, text in sorted(described.items()):
        responses[status] = {"description": text, "content": {JSON: {"schema": ERROR}}}
    responses[503]["headers"] = {
        "Retry-After": {
            "description": "seconds to wait before sending again",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    }
    if with_keys:
        responses[401]["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string", "const": "ApiKey"}, "required": True}
        }
    return responses


def install(app: FastAPI, gateway: Gateway) -> tuple[Handle, dict[str, tuple[str, bool]]]:
    """Declare the routes on `app`; the publish handler and its paths, for the fast path."""
    settings = gateway.settings
    prefix = gateway.catalogue.prefix
    with_keys = not gateway.keys.open

    async def handle(
        topic: str,
        batch: bool,
        body: bytes,
        content_type: str | None,
        x_api_key: str | None,
        authorization: str | None,
        idempotency_key: str | None,
    ) -> dict[str, Any]:
        """One publish request, from its raw parts to the answer; GatewayError for a refusal."""
        from pipeline.gateway.auth import presented_key

        spec = gateway.spec_for(topic)
        gateway.keys.authorise(presented_key(x_api_key, authorization), topic)
        check_size(body, settings.gateway.max_body_bytes)
        raw = (
            parse_batch(body, content_type, settings.gateway.max_batch_events)
            if batch
            else [parse_single(body, content_type)]
        )
        events = gateway.validate(spec, raw)
        if not idempotency_key:
            return await gateway.publish(topic, spec, events, None)
        key = f"{topic}\x00{'batch' if batch else 'one'}\x00{idempotency_key}"
        try:
            async with gateway.idempotency.lock(key):
                answered = gateway.idempotency.get(key)
                if answered is not None:
                    return {**answered, "replayed": True}
                answer = await gateway.publish(topic, spec, events, idempotency_key)
                gateway.idempotency.put(key, answer)
                return answer
        finally:
            gateway.idempotency.release(key)

    def endpoint(topic: str, batch: bool) -> Callable[..., Awaitable[JSONResponse]]:
        """A route function bound to its topic; FastAPI reads the headers from its signature.

        Requests reach it only when the fast path (pipeline.gateway.fast_path)
        is not in front; the route is what the OpenAPI document describes.
        """

        async def publish(
            request: Request,
            idempotency_key: str | None = Header(
                None,
                description="publishes once per key within the idempotency window; a repeat "
                "gets the first answer with replayed: true",
            ),
        ) -> JSONResponse:
            headers = request.headers
            answer = await handle(
                topic,
                batch,
                await request.body(),
                headers.get("content-type"),
                headers.get("x-api-key"),
                headers.get("authorization"),
                idempotency_key,
            )
            return JSONResponse(answer)

        return publish

    def route_for(spec: TopicSpec[BaseModel]) -> None:
        logical = spec.name.removeprefix(prefix)
        model = spec.event_model.__name__
        single_body = {
            "required": True,
            "content": {JSON: {"schema": references[spec.event_model]}},
        }
        # What parse_batch enforces: an empty batch is refused (400), an oversized one (413).
        batch_schema = {
            "type": "array",
            "items": references[spec.event_model],
            "minItems": 1,
            "maxItems": settings.gateway.max_batch_events,
        }
        # NDJSON and msgpack carry the same array: one event per line, or a msgpack array.
        batch_body = {
            "required": True,
            "content": {JSON: {"schema": batch_schema}}
            | {kind: {"schema": batch_schema} for kind in (NDJSON[0], MSGPACK[0])},
        }
        security: dict[str, Any] = (
            {"security": [{name: []} for name in SECURITY_SCHEMES]} if with_keys else {}
        )

        routes = (
            ("events", False, single_body, f"Publish one {model} to {logical}", "publish"),
            (
                "events:batch",
                True,
                batch_body,
                f"Publish a batch of {model} to {logical} (all or nothing)",
                "publish_batch",
            ),
        )
        for path, batch, body, summary, operation in routes:
            app.add_api_route(
                f"/v1/topics/{logical}/{path}",
                endpoint(logical, batch),
                methods=["POST"],
                summary=summary,
                operation_id=f"{operation}_{logical.replace('.', '_')}",
                openapi_extra={"requestBody": body, **security},
                responses=_responses(with_keys),
            )

    published = [spec for spec in gateway.catalogue if not spec.is_dlq]
    references, components_schemas = document_schemas(
        list(dict.fromkeys(spec.event_model for spec in published))
    )
    for spec in published:
        route_for(spec)
    routes = {}
    for spec in published:
        logical = spec.name.removeprefix(prefix)
        routes[f"/v1/topics/{logical}/events"] = (logical, False)
        routes[f"/v1/topics/{logical}/events:batch"] = (logical, True)

    @app.get("/v1/topics", summary="The catalogue: topics, keys and event schemas")
    async def topics() -> dict[str, Any]:
        return {
            "topics": [
                {
                    "name": spec.name.removeprefix(prefix),
                    "key_field": spec.key_field,
                    "partitions": spec.partitions,
                    "event_type": spec.event_type,
                    "schema": gateway.contracts[spec.name].schema,
                }
                for spec in published
            ]
        }

    @app.post("/v1/topics/{topic}/events", include_in_schema=False)
    async def unknown_one(topic: str) -> None:
        gateway.spec_for(topic)  # raises 404: the known topics matched their own routes

    @app.post("/v1/topics/{topic}/events:batch", include_in_schema=False)
    async def unknown_many(topic: str) -> None:
        gateway.spec_for(topic)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {})
        components.setdefault("schemas", {}).update(components_schemas)
        if with_keys:
            components["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return handle, routes
