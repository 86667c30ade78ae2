"""The gateway's ASGI app: the publish routes' fast path, FastAPI for the rest, metrics around.

What a publish does is pipeline.gateway.core; this module only wires it to HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from pipeline.catalogue import load_catalogue
from pipeline.gateway.core import Gateway
from pipeline.gateway.errors import GatewayError
from pipeline.gateway.fast_path import FastPublish
from pipeline.gateway.routes import install
from pipeline.metrics import Metrics, forget_process, multiprocess_dir
from pipeline.resilience.tasks import CANCEL_WAIT_S, cancel_and_wait
from pipeline.settings import PipelineSettings, load_settings
from pipeline.telemetry import tracing
from pipeline.telemetry.client_logs import setup_process_logging

log = logging.getLogger("pipeline.gateway")
RECONNECT_S = 2.0
SHARE_GAUGES_EVERY_S = 1.0


def create_app(settings: PipelineSettings | None = None) -> Any:
    """The ASGI app for uvicorn (`pipeline gateway` runs it with factory=True).

    Outermost the request metrics, then the publish routes' fast path
    (pipeline.gateway.fast_path), then FastAPI for everything else.
    """
    settings = settings or load_settings()
    setup_process_logging("INFO", who=f"gateway-{os.getpid()}")
    tracing.setup_tracing("pipeline-gateway", settings.otlp_endpoint)
    catalogue = load_catalogue(settings.catalogue_module, settings.topic_prefix)
    gateway = Gateway(settings, catalogue)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        sharing = asyncio.ensure_future(_share_gauges(gateway.metrics))
        try:
            yield
        finally:
            await cancel_and_wait(sharing, CANCEL_WAIT_S, "sharing the gauges")
            await gateway.stop()
            forget_process()
            tracing.shutdown_tracing()

    app = FastAPI(
        title="pipeline ingest gateway",
        version="1",
        description="Publish events to the catalogue's topics over HTTP.",
        lifespan=lifespan,
    )
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


async def _share_gauges(metrics: Metrics) -> None:
    """With several processes behind the port, keep this one's gauges where a scrape reads them."""
    if multiprocess_dir() is None:
        return
    while True:
        metrics.share_gauges()
        await asyncio.sleep(SHARE_GAUGES_EVERY_S)


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
            with tracing.serving(scope["method"], scope["path"], scope["headers"]) as span:
                try:
                    await self.app(scope, receive, send_and_note)
                finally:
                    if span is not None:
                        route = getattr(scope.get("route"), "path", "unmatched")
                        span.update_name(f"{scope['method']} {route}")
                        span.set_attribute("http.response.status_code", status)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.inc("requests", labels={"route": path, "status": str(status)})
            self.metrics.observe("request_seconds", time.perf_counter() - started, {"route": path})
