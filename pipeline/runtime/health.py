"""/healthz, /readyz and /metrics for a worker, on a small asyncio HTTP server.

Orchestrators poll these a few times a minute; a hand-written HTTP/1.0
responder is enough and keeps a web framework out of every worker.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from pipeline.metrics import Metrics

log = logging.getLogger("pipeline.health")


class Observable(Protocol):
    """What the endpoints report on: a worker, a supervisor, a lag monitor."""

    @property
    def ready(self) -> bool: ...

    @property
    def metrics(self) -> Metrics: ...

    def live(self) -> tuple[bool, str]: ...


class HealthServer:
    def __init__(self, runtime: Observable, port: int, host: str = "127.0.0.1") -> None:
        self.runtime = runtime
        self.port = port
        self.host = host
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health endpoints on http://%s:%d/{healthz,readyz,metrics}", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def respond(self, path: str) -> tuple[int, str, str]:
        if path == "/healthz":
            live, reason = self.runtime.live()
            return (200 if live else 503), "text/plain", reason + "\n"
        if path == "/readyz":
            ready = self.runtime.ready
            return (200 if ready else 503), "text/plain", ("ready" if ready else "not ready") + "\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self.runtime.metrics.render()
        return 404, "text/plain", "try /healthz, /readyz or /metrics\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            parts = request_line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else "/"
            status, content_type, body = self.respond(path)
            payload = body.encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.0 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            log.debug("health request dropped: %s", exc)
        finally:
            writer.close()
