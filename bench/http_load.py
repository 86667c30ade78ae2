"""A closed-loop HTTP/1.1 load generator: keep-alive connections, each sending when answered.

Run as its own process by bench/gateway.py, so its CPU is not the
gateway's. Written on asyncio streams rather than an HTTP library: it only
needs POST with a fixed body per request and the status and length of each
answer, and a library's per-request overhead would make the generator, not
the gateway, the bottleneck on two cores. Also `--direct`: the same loop of
publishes through EventProducer.publish, the baseline the gateway is held to.

Prints one JSON object: requests, events acknowledged, events/s, latency
percentiles, answers by status, connection errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.events_ok = 0
        self.errors = 0

    def summary(self, seconds: float) -> dict[str, object]:
        ordered = sorted(self.latencies)

        def percentile(share: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

        requests = sum(self.statuses.values())
        rejected = requests - sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        return {
            "requests": requests,
            "events": self.events_ok,
            "events_per_s": round(self.events_ok / seconds, 1),
            "p50_ms": round(percentile(0.50), 2),
            "p99_ms": round(percentile(0.99), 2),
            "rejected": round((rejected + self.errors) / max(1, requests + self.errors), 5),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "connection_errors": self.errors,
        }


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) of one response; its body is read and dropped."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split()[1])
    length = 0
    keep_alive = True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
    if length:
        await reader.readexactly(length)
    return status, keep_alive


async def connection_loop(
    url: str, bodies: list[bytes], per_request: int, deadline: float, stats: Stats, offset: int
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    )
    requests = [(head + f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]
    index = offset
    writer = None
    while time.monotonic() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(requests[index % len(requests)])
            index += 1
            status, keep_alive = await _read_answer(reader)
            stats.latencies.append(time.perf_counter() - started)
            stats.statuses[status] += 1
            if 200 <= status < 300:
                stats.events_ok += per_request
            if not keep_alive:
                writer.close()
                writer = None
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
            stats.errors += 1
            if writer is not None:
                writer.close()
                writer = None
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


async def http_load(
    url: str, bodies: list[bytes], per_request: int, connections: int, seconds: float
) -> dict[str, object]:
    stats = Stats()
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(
        *(
            connection_loop(url, bodies, per_request, deadline, stats, i * 7)
            for i in range(connections)
        )
    )
    return stats.summary(time.monotonic() - started)


async def direct_load(bootstrap: str, topic: str, tasks: int, seconds: float) -> dict[str, object]:
    """`tasks` coroutines, each publishing one order at a time through EventProducer.publish."""
    from pipeline.publishing.producer import EventProducer
    from pipeline.settings import PipelineSettings
    from producers.loadgen import OrderGenerator
    from topics import ORDERS

    spec = ORDERS.with_name(topic)
    orders = OrderGenerator(10_000).batch(2000)
    stats = Stats()
    deadline = time.monotonic() + seconds

    async def one(offset: int, producer: EventProducer) -> None:
        index = offset
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                await producer.publish(spec, orders[index % len(orders)])
            except Exception:  # noqa: BLE001 - counted, as the HTTP loop counts errors
                stats.errors += 1
                continue
            finally:
                index += 1
            stats.latencies.append(time.perf_counter() - started)
            stats.statuses[200] += 1
            stats.events_ok += 1

    async with EventProducer(PipelineSettings(bootstrap_servers=bootstrap)) as producer:
        started = time.monotonic()
        await asyncio.gather(*(one(i * 7, producer) for i in range(tasks)))
        return stats.summary(time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="POST target, e.g. http://127.0.0.1:8080/v1/topics/orders/events"
    )
    parser.add_argument("--bodies", type=Path, help="JSON lines: one request body per line")
    parser.add_argument("--events-per-request", type=int, default=1)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--direct", help="bootstrap servers: publish directly instead of HTTP")
    parser.add_argument("--topic", help="with --direct: the topic")
    args = parser.parse_args()
    if args.direct:
        result = asyncio.run(direct_load(args.direct, args.topic, args.connections, args.seconds))
    else:
        bodies = [line.encode() for line in args.bodies.read_text().splitlines() if line]
        result = asyncio.run(
            http_load(args.url, bodies, args.events_per_request, args.connections, args.seconds)
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
