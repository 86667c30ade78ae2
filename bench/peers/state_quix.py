"""quixstreams on the stateful job: a stateful apply keeping the count and sum per key."""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from typing import Any

import msgpack
from quixstreams import Application

from bench.peers.state_job import Running
from topics.models import Order


def main(bootstrap: str, source: str, output: str, group: str, count: int) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        auto_create_topics=True,  # its changelog topics
        state_dir=os.environ["PEERS_STATE_DIR"],
    )
    input_topic = app.topic(source, value_deserializer="bytes", key_deserializer="bytes")
    output_topic = app.topic(output, value_serializer="bytes", key_serializer="bytes")
    frame = app.dataframe(input_topic)

    def running(value: bytes, state: Any) -> bytes:
        order = Order.model_validate(msgpack.unpackb(value))
        orders = state.get("orders", 0) + 1
        total = Decimal(state.get("total", "0")) + order.amount
        state.set("orders", orders)
        state.set("total", str(total))  # its state is JSON: a Decimal kept as text
        figures = Running(customer_id=order.customer_id, orders=orders, total=total)
        return msgpack.packb(figures.model_dump(mode="json"))

    frame = frame.apply(running, stateful=True)
    frame.to_topic(output_topic)
    app.run(count=count, collect=False)


if __name__ == "__main__":
    main(os.environ["PEERS_BOOTSTRAP"], sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
