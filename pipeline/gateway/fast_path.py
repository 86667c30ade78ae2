"""The publish routes answered in front of FastAPI's request machinery.

A profile of the gateway under 50 connections put half of its CPU in the
framework's layers between the server and the endpoint (dependency
solving, exception and body-limit middleware, response encoding), and the
gateway was CPU-bound at a fraction of the broker's pace. The two publish
routes of each topic are plain ASGI here: headers from the scope, the body
from `receive`, the same handler and the same error answers. Everything
else (docs, OpenAPI, catalogue, health, metrics, unknown topics) goes on to
FastAPI, where these routes are still declared for the OpenAPI document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from pipeline.gateway.core import Gateway
from pipeline.gateway.errors import GatewayError

log = logging.getLogger("pipeline.gateway")

Handle = Callable[
    [str, bool, bytes, str | None, str | None, str | None, str | None],
    Awaitable[dict[str, Any]],
]


class PublishRoute(NamedTuple):
    """Stands where FastAPI puts its matched route, so request metrics label it the same."""

    path: str
    topic: str
    batch: bool


class FastPublish:
    def __init__(
        self, app: Any, gateway: Gateway, handle: Handle, routes: dict[str, tuple[str, bool]]
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.handle = handle
        self.routes = {path: PublishRoute(path, *target) for path, target in routes.items()}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        route = (
            self.routes.get(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route
        headers: dict[bytes, bytes] = dict(scope["headers"])

        def header(name: bytes) -> str | None:
            value = headers.get(name)
            return None if value is None else value.decode("latin-1")

        try:
            body = await _read_body(receive, self.gateway.settings.gateway.max_body_bytes)
            answer = await self.handle(
                route.topic,
                route.batch,
                body,
                header(b"content-type"),
                header(b"x-api-key"),
                header(b"authorization"),
                header(b"idempotency-key"),
            )
        except GatewayError as exc:
            self.gateway.rejected(exc, "POST", route.path)
            await _answer(send, exc.status, exc.body(), exc.headers)
            return
        except Exception:
            log.exception("POST %s failed", route.path)
            error = {"status": 500, "reason": "internal_error", "message": "see the gateway's log"}
            await _answer(send, 500, {"error": error}, {})
            return
        await _answer(send, 200, answer, {})


async def _read_body(receive: Any, limit: int) -> bytes:
    """The request body, read no further than just past `limit`.

    The handler refuses a body over the limit (after it checked the topic
    and the key, as the declared route does); a body far over it is not
    read to the end first.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError(400, "malformed_request", "the client went away mid-body")
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit or not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Any, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})
