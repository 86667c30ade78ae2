"""Scenario kill9's table check: a burst of updates, then every replica asked for each key.

A replica's table is read through its handler (`ctx.table(...).get`), the
way a processor sees it: a probe event per table key on every input
partition, so every replica answers for every key, compared with each
key's last version in the compacted topic.
"""

from __future__ import annotations

import asyncio
import threading

from pipeline.chaos.checking import PARTITIONS, Checked, Sequenced, TableRow
from pipeline.chaos.run import ChaosRun
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.kafka.partitioner import kafka_partition
from pipeline.publishing.producer import EventProducer
from pipeline.reading.reader import read_all
from pipeline.wire.codec import decode_value

TABLE_KEYS = 500


class TableBurst:
    """Table updates (a key's version goes up) from a thread, 2,000 a second, until stopped."""

    def __init__(self, run: ChaosRun) -> None:
        self.run = run
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: run_sync(self._publish()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(60)
        return self.sent

    async def _publish(self) -> None:
        async with EventProducer(self.run.cluster.settings) as producer:
            while not self._stop.is_set():
                rows = [
                    TableRow(key=f"t{n % TABLE_KEYS}", version=n)
                    for n in range(self.sent, self.sent + 200)
                ]
                await producer.publish_many(self.run.table_topic, rows)
                self.sent += len(rows)
                await asyncio.sleep(0.1)


def last_versions(run: ChaosRun) -> dict[str, int]:
    records = run_sync(read_all(connect(run.cluster.settings), run.table_topic.name))
    last: dict[str, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        row = decode_value(run.table_topic, record.value)
        assert isinstance(row, TableRow)
        last[row.key] = row.version
    return last


def probe_every_replica(run: ChaosRun, keys: list[str]) -> list[tuple[str, str, int]]:
    """Each table key asked on every input partition, so every replica answers for all
    of them; (replica, key, version) of each answer."""
    routing = _key_per_partition(PARTITIONS)
    probes = [
        Sequenced(key=routing[p], seq=0, probe=key) for p in range(PARTITIONS) for key in keys
    ]

    async def publish() -> set[tuple[int, int]]:
        async with EventProducer(run.cluster.settings) as producer:
            deliveries = await producer.publish_many(run.input, probes)
        return {(d.partition, d.offset) for d in deliveries}

    asked = run_sync(publish())
    answers: dict[tuple[int, int], Checked] = {}

    def all_answered() -> bool:
        for record in run_sync(read_all(connect(run.cluster.settings), run.output.name)):
            checked = decode_value(run.output, record.value)
            assert isinstance(checked, Checked)
            source = (checked.source_partition, checked.source_offset)
            if source in asked:
                answers.setdefault(source, checked)
        return len(answers) == len(asked)

    run.wait_until(all_answered, 120, "every probe answered")
    return [(c.replica, c.probe, c.table_version) for c in answers.values()]


def _key_per_partition(partitions: int) -> dict[int, str]:
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        key = f"probe-{n}"
        found.setdefault(kafka_partition(key.encode(), partitions), key)
        n += 1
    return found
