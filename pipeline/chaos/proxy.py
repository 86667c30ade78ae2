"""TCP proxies on loopback between one worker and the brokers: added latency, a blackhole.

Each broker has a second listener that advertises a proxy port
(pipeline.dev.localkafka), so a client bootstrapped through the proxies
gets proxy addresses in its metadata and all its traffic (fetches,
produces, the group coordinator) goes through here; other clients are
untouched. Latency delays every chunk in each direction by the same
amount, keeping the stream's order. A blackhole forwards nothing either
way and holds what arrives, as a network that drops packets leaves TCP
retransmitting: the peers see silence, not a closed connection, until
their own timeouts give up. Healing forwards what was held.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterable

log = logging.getLogger("pipeline.chaos")

CHUNK = 64 * 1024


class FaultyNetwork:
    """One proxy per (listen port → target port), run on a thread of its own."""

    def __init__(self, routes: Iterable[tuple[int, int]]) -> None:
        self.routes = list(routes)
        self.latency_s = 0.0
        self._open = asyncio.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="chaos-proxy", daemon=True
        )
        self._servers: list[asyncio.Server] = []
        self._pipes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def set_latency(self, seconds: float) -> None:
        self.latency_s = seconds

    def blackhole(self) -> None:
        self._loop.call_soon_threadsafe(self._open.clear)

    def heal(self) -> None:
        self.latency_s = 0.0
        self._loop.call_soon_threadsafe(self._open.set)

    async def _listen(self) -> None:
        self._open.set()
        for listen_port, target_port in self.routes:
            server = await asyncio.start_server(
                functools.partial(self._connect, target=target_port), "127.0.0.1", listen_port
            )
            self._servers.append(server)

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _connect(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, target: int
    ) -> None:
        await self._open.wait()
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError as exc:
            log.debug("proxy to %d: %s", target, exc)
            client_writer.close()
            return
        for reader, writer in ((client_reader, broker_writer), (broker_reader, client_writer)):
            task = asyncio.ensure_future(self._pipe(reader, writer))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward in order, each chunk no earlier than its arrival plus the latency."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        forwarder = asyncio.ensure_future(self._forward(queue, writer))
        try:
            while chunk := await reader.read(CHUNK):
                queue.put_nowait((time.monotonic(), chunk))
            queue.put_nowait((time.monotonic(), b""))
            await forwarder
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            forwarder.cancel()
            with contextlib.suppress(OSError):
                writer.close()

    async def _forward(
        self, queue: asyncio.Queue[tuple[float, bytes]], writer: asyncio.StreamWriter
    ) -> None:
        while True:
            arrived, chunk = await queue.get()
            await self._open.wait()
            delay = arrived + self.latency_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._open.wait()
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
