"""quixstreams: a StreamingDataFrame applying the same work, to_topic the output."""

from __future__ import annotations

import os
import sys
import time

from quixstreams import Application

from bench.peers.work import SLOW_S, enrich_bytes, is_slow
from pipeline.kafka.partitioner import kafka_partition


def main(bootstrap: str, source: str, output: str, group: str, count: int) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        auto_create_topics=False,
    )
    input_topic = app.topic(source, value_deserializer="bytes", key_deserializer="bytes")
    output_topic = app.topic(output, value_serializer="bytes", key_serializer="bytes")
    frame = app.dataframe(input_topic)
    partitions = int(os.environ.get("PEERS_PARTITIONS", "12"))

    def work(value: bytes, key: bytes, timestamp: int, headers: object) -> bytes:
        if is_slow(kafka_partition(key, partitions)):
            time.sleep(SLOW_S)  # quixstreams handlers are synchronous
        return enrich_bytes(value)

    frame = frame.apply(work, metadata=True)
    frame.to_topic(output_topic)
    app.run(count=count, collect=False)


if __name__ == "__main__":
    main(os.environ["PEERS_BOOTSTRAP"], sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
