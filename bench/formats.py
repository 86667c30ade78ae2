"""The peers' job (P1) in each body format: encode, decode and the whole pipeline, in one run.

Per format (msgpack, json, avro, json_schema), with a private broker and a
real schema registry (Apicurio, started by pipeline.dev.registry):

- encode and decode: microseconds per Order in this process, through the
  codec every worker uses (the registry already asked, as in a worker);
- pipeline: `pipeline worker` (one replica, aiokafka) on the peers'
  enrichment job with its input and output topics in that format, events/s
  between 10% and 90% of the events, measured on the output topic.

Formats run interleaved, `--rounds` times (3); each round's ratio to
msgpack is reported, then each ratio's median and spread (these machines
are noisy: a claim rests on the median). Ends with one JSON line.

Run: .venv/bin/python bench/formats.py [--events 100000] [--rounds 3]
(starts a private broker and registry unless KAFKA_BOOTSTRAP and
SCHEMA_REGISTRY_URL are set)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel

from bench.peers.launch import worker_command
from bench.pipeline_peers import CUSTOMERS, build_customer_db, run_contestant
from pipeline.catalogue import TopicSpec
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.registry import ephemeral_registry
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import TopicEncoder, decode_value
from pipeline.wire.formats import Format
from pipeline.wire.registry import configure_registry
from producers.loadgen import OrderGenerator
from topics import ORDERS, ORDERS_ENRICHED

FORMATS: tuple[Format, ...] = ("msgpack", "json", "avro", "json_schema")
MICRO_EVENTS = 20_000


def codec_micros(fmt: Format) -> tuple[float, float]:
    """µs per event to encode and to decode an Order in `fmt`, the registry already asked."""
    spec = dataclasses.replace(ORDERS.with_name(f"formats.micro.{fmt}"), format=fmt)
    orders = OrderGenerator(CUSTOMERS).batch(MICRO_EVENTS)
    encoder = TopicEncoder(spec)
    encoder.encode(orders[0], "warm-up")
    started = time.perf_counter()
    values = [encoder.encode(order, "id").value for order in orders]
    encode_us = (time.perf_counter() - started) / MICRO_EVENTS * 1e6
    decode_value(spec, values[0])
    started = time.perf_counter()
    for value in values:
        decode_value(spec, value)
    decode_us = (time.perf_counter() - started) / MICRO_EVENTS * 1e6
    return encode_us, decode_us


async def fill(settings: PipelineSettings, topic: str, fmt: Format, count: int) -> None:
    spec = dataclasses.replace(ORDERS.with_name(topic), format=fmt)
    generator = OrderGenerator(CUSTOMERS)
    async with EventProducer(settings) as producer:
        for start in range(0, count, 5000):
            await producer.publish_many(spec, generator.batch(min(5000, count - start)))


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300, help="seconds per pipeline run")
    args = parser.parse_args()
    say = lambda m: print(f"[setup] {m}", file=sys.stderr)  # noqa: E731
    with (
        ephemeral_kafka(progress=say) as bootstrap,
        ephemeral_registry(progress=say) as registry_url,
        tempfile.TemporaryDirectory(prefix="formats-") as folder,
    ):
        settings = PipelineSettings(
            bootstrap_servers=bootstrap, schema_registry={"url": registry_url}
        )
        configure_registry(settings.schema_registry)
        micro = {fmt: codec_micros(fmt) for fmt in FORMATS}
        for fmt, (encode_us, decode_us) in micro.items():
            print(f"{fmt:12s} encode {encode_us:6.1f} µs  decode {decode_us:6.1f} µs per Order")
        db_path = Path(folder) / "customers"
        build_customer_db(db_path)
        rates: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        for round_number in range(1, args.rounds + 1):
            # Each round starts with another format: the later runs of a round met a busier
            # broker (more topics, more log), which cost the last one up to a third.
            shift = (round_number - 1) % len(FORMATS)
            for fmt in FORMATS[shift:] + FORMATS[:shift]:
                run = uuid.uuid4().hex[:8]
                source, output = f"formats.{run}.in", f"formats.{run}.out"
                specs: list[TopicSpec[BaseModel]] = [
                    dataclasses.replace(ORDERS.with_name(source), format=fmt),
                    dataclasses.replace(ORDERS_ENRICHED.with_name(output), format=fmt),
                ]
                specs = [dataclasses.replace(s, replication_factor=1) for s in specs]
                specs.append(specs[0].dlq_spec())
                asyncio.run(ensure_topics(connect(settings), specs))
                asyncio.run(fill(settings, source, fmt, args.events))
                env = {
                    "PEERS_DB": str(db_path),
                    "PEERS_INPUT": source,
                    "PEERS_OUTPUT": output,
                    "PEERS_GROUP": f"formats-{run}",
                    "PEERS_FORMAT": fmt,
                    "PIPELINE_SCHEMA_REGISTRY__URL": registry_url,
                }
                outcome = asyncio.run(
                    run_contestant(
                        fmt,
                        worker_command(bootstrap),
                        env,
                        settings,
                        output,
                        args.events,
                        args.timeout,
                    )
                )
                rates[fmt].append(outcome.events_per_s)
                print(
                    f"round {round_number} {fmt:12s} {outcome.events_per_s:>9,.0f} events/s "
                    f"{outcome.note}"
                )
    figures: dict[str, object] = {}
    for fmt in FORMATS:
        encode_us, decode_us = micro[fmt]
        figures[f"{fmt}_encode_us"] = round(encode_us, 2)
        figures[f"{fmt}_decode_us"] = round(decode_us, 2)
        figures[f"{fmt}_events_per_s_median"] = round(statistics.median(rates[fmt]))
        if fmt != "msgpack":
            ratios = [r / m for r, m in zip(rates[fmt], rates["msgpack"], strict=True) if m]
            figures[f"{fmt}_vs_msgpack_median"] = round(statistics.median(ratios), 3)
            figures[f"{fmt}_vs_msgpack_spread"] = spread(ratios)
            print(
                f"{fmt:12s} / msgpack: median {statistics.median(ratios):.2f} "
                f"(spread {spread(ratios)}, {len(ratios)} rounds)"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
