"""faust-streaming: an agent that sends each enriched event to the output topic."""

from __future__ import annotations

import os
import sys

import faust

from bench.peers.work import enrich_bytes


def main(bootstrap: str, source: str, output: str, group: str) -> None:
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        store="memory://",
        datadir=os.environ.get("PEERS_DATADIR", "/tmp/peers-faust-data"),
    )
    input_topic = app.topic(source, value_type=bytes, key_type=bytes)
    output_topic = app.topic(output, value_type=bytes, key_type=bytes)

    @app.agent(input_topic)
    async def enrich(stream):  # type: ignore[no-untyped-def]
        async for key, value in stream.items():
            await output_topic.send(key=key, value=enrich_bytes(value))

    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()


if __name__ == "__main__":
    main(os.environ["PEERS_BOOTSTRAP"], sys.argv[1], sys.argv[2], sys.argv[3])
