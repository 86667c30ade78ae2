"""What does the local cache buy in front of PostgreSQL?

1. Lookup latency, in this process, over Zipf-skewed customer ids (a few
   customers place most orders): every lookup asked of PostgreSQL through the
   pool, against LocalCache.get_or_load with PostgreSQL as the loader. Also a
   hit's cost in rocksdict's default (pickled) mode against the raw-bytes and
   msgpack mode the cache uses.
2. Processor throughput: a real `pipeline worker` draining a backlog of
   orders, once as enrich_orders ships (cache on, misses loaded from
   PostgreSQL) and once asking PostgreSQL for every order (cache off).

Prints the figures and, last, one JSON line.

Run: .venv/bin/python bench/cache.py [--orders 60000]
(starts a private broker and PostgreSQL unless KAFKA_BOOTSTRAP / POSTGRES_URL are set)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rocksdict import Rdict

from bench.peers.environment import versions_of_every_contestant
from bench.pipeline_peers import peak_rss_mb
from consumers.enrich_orders import load_customer
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.localpg import ephemeral_postgres
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.scaling.worker_process import WorkerProcess
from pipeline.settings import DatabaseTuning, PipelineSettings
from pipeline.stores.cache import LocalCache
from pipeline.stores.db import Database
from pipeline.stores.migrations import migrate
from pipeline.stores.services import Services
from producers.loadgen import CustomerGenerator, OrderGenerator
from topics import CATALOGUE

CUSTOMERS = 20_000


def zipf_keys(count: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    cumulative = list(itertools.accumulate(1.0 / rank**1.1 for rank in range(1, CUSTOMERS + 1)))
    ids = list(range(CUSTOMERS))
    rng.shuffle(ids)
    return [
        f"cust-{ids[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]:07d}"
        for _ in range(count)
    ]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


async def seed(url: str) -> None:
    await migrate(url, DatabaseTuning().migrations_dir)
    async with Database(url) as db:
        rows = [tuple(c.model_dump().values()) for c in CustomerGenerator(CUSTOMERS)]
        async with db.connection() as connection:
            await connection.executemany(
                "INSERT INTO customers (customer_id, name, email, country, segment, "
                "signed_up_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (customer_id) DO NOTHING",
                rows,
            )


async def lookup_latency(url: str, folder: Path, lookups: int) -> dict[str, float]:
    keys = zipf_keys(lookups)
    figures: dict[str, float] = {}
    async with Database(url, DatabaseTuning(pool_max_size=4)) as db:
        services = Services("bench", database=db)
        samples = []
        for key in keys:
            began = time.perf_counter()
            await load_customer(key, services)
            samples.append(time.perf_counter() - began)
        p50, p99 = percentiles(samples)
        figures.update(postgres_p50_us=round(p50), postgres_p99_us=round(p99))
        print(f"PostgreSQL every lookup: p50 {p50:7.0f} µs, p99 {p99:7.0f} µs", file=sys.stderr)

        cache = LocalCache(folder / "lookups", name="customers", default_ttl_s=300)

        async def load(key: str) -> object:
            found = await load_customer(key, services)
            return None if found is None else found.model_dump(mode="json")

        samples = []
        for key in keys:
            began = time.perf_counter()
            await cache.get_or_load(key, lambda key=key: load(key))  # type: ignore[misc]
            samples.append(time.perf_counter() - began)
        p50, p99 = percentiles(samples)
        ratio = cache.stats.hit_ratio
        figures.update(cached_p50_us=round(p50, 1), cached_p99_us=round(p99), hit_ratio=ratio)
        print(
            f"cache, PostgreSQL on miss: p50 {p50:7.1f} µs, p99 {p99:7.0f} µs "
            f"(hit ratio {ratio:.1%})",
            file=sys.stderr,
        )

    # A hit's cost: rocksdict's pickling default against raw bytes + msgpack.
    value = cache.get(keys[0])
    pickled = Rdict(str(folder / "pickled"))
    for key in set(keys):
        pickled[key] = value
    hits = keys[:50_000]
    began = time.perf_counter()
    for key in hits:
        pickled[key]
    pickled_us = (time.perf_counter() - began) / len(hits) * 1e6
    began = time.perf_counter()
    for key in hits:
        cache.get(key)
    raw_us = (time.perf_counter() - began) / len(hits) * 1e6
    pickled.close()
    cache.close()
    figures.update(hit_pickled_us=round(pickled_us, 2), hit_msgpack_us=round(raw_us, 2))
    print(
        f"a hit: rocksdict default (pickle) {pickled_us:.2f} µs, "
        f"LocalCache (raw + msgpack) {raw_us:.2f} µs",
        file=sys.stderr,
    )
    return figures


async def publish_backlog(settings: PipelineSettings, prefix: str, orders: int) -> None:
    catalogue = CATALOGUE.with_prefix(prefix)
    await ensure_topics(connect(settings), catalogue.with_dlqs())
    generator = OrderGenerator(CUSTOMERS)
    async with EventProducer(settings) as producer:
        for start in range(0, orders, 5000):
            await producer.publish_many(
                catalogue.get("orders"), generator.batch(min(5000, orders - start))
            )


async def count(settings: PipelineSettings, topic: str) -> int:
    return sum((await end_offsets(connect(settings), topic)).values())


async def drain(
    settings: PipelineSettings, url: str, folder: Path, processor: str, orders: int
) -> tuple[float, float]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await publish_backlog(settings, prefix, orders)
    worker = WorkerProcess(
        processor,
        "r0",
        {
            "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PIPELINE_DATABASE_URL": url,
            "PIPELINE_TOPIC_PREFIX": prefix,
            "PIPELINE_STATE_DIR": str(folder / processor),
            "PIPELINE_PROCESSORS_MODULE": "bench.cache_processors",
        },
        folder / f"{processor}.log",
    )
    try:
        # Readiness needs the backlog drained, so time from the first output instead.
        output = f"{prefix}orders.enriched"
        while await count(settings, output) == 0:
            if not worker.running:
                raise RuntimeError(f"{processor} exited: {worker.tail()}")
            await asyncio.sleep(0.05)
        began = time.monotonic()
        first = await count(settings, output)
        while (done := await count(settings, output)) < orders:
            if not worker.running:
                raise RuntimeError(f"{processor} exited: {worker.tail()}")
            await asyncio.sleep(0.1)
        rate = (done - first) / (time.monotonic() - began)
        return rate, peak_rss_mb(worker.process.pid)
    finally:
        worker.stop(grace_s=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=60_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args()
    say = lambda message: print(f"… {message}", file=sys.stderr)  # noqa: E731
    with (
        ephemeral_kafka(progress=say) as bootstrap,
        ephemeral_postgres(progress=say) as url,
        tempfile.TemporaryDirectory(prefix="bench-cache-") as folder,
    ):
        asyncio.run(seed(url))
        figures = asyncio.run(lookup_latency(url, Path(folder), args.lookups))
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        for label, processor in (("cache_on", "enrich_cached"), ("cache_off", "enrich_uncached")):
            rate, rss = asyncio.run(drain(settings, url, Path(folder), processor, args.orders))
            figures[f"{label}_events_per_s"] = round(rate)
            figures[f"{label}_peak_rss_mb"] = round(rss)
            print(
                f"{processor:>16}: {rate:9,.0f} orders/s over a {args.orders:,} backlog, "
                f"peak RSS {rss:.0f} MB",
                file=sys.stderr,
            )
        figures["throughput_ratio"] = round(
            figures["cache_on_events_per_s"] / figures["cache_off_events_per_s"], 2
        )
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
