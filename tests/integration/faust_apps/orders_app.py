"""A faust-streaming app beside this project's workers, on the same topics.

It publishes orders with pipeline.interop.faust (our body and headers), and
an agent reads `orders.enriched`, written by our `enrich_orders` worker, as
typed events; each one it gets is appended to FAUST_OUT as a JSON line.

Run: python tests/integration/faust_apps/orders_app.py worker -l warn
(env: PIPELINE_BOOTSTRAP_SERVERS, PIPELINE_TOPIC_PREFIX, FAUST_ORDERS, FAUST_OUT, FAUST_DATADIR)
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import faust

from pipeline.interop.faust import catalogue_topic, events, send
from topics import CATALOGUE
from topics.models import EnrichedOrder, Order

PREFIX = os.environ["PIPELINE_TOPIC_PREFIX"]
COUNT = int(os.environ["FAUST_ORDERS"])
OUT = Path(os.environ["FAUST_OUT"])
CUSTOMERS = int(os.environ.get("FAUST_CUSTOMERS", "50"))

catalogue = CATALOGUE.with_prefix(PREFIX)
ORDERS = catalogue.get("orders")
ENRICHED = catalogue.get("orders.enriched")

app = faust.App(
    PREFIX + "faust-interop",
    broker=f"kafka://{os.environ['PIPELINE_BOOTSTRAP_SERVERS']}",
    topic_allow_declare=False,
    topic_disable_leader=True,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    store="memory://",
    datadir=os.environ["FAUST_DATADIR"],
)
orders_topic = catalogue_topic(app, ORDERS)
enriched_topic = catalogue_topic(app, ENRICHED)


@app.task
async def publish_orders() -> None:
    placed = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for number in range(COUNT):
        order = Order(
            order_id=f"{PREFIX}faust-{number}",
            customer_id=f"{PREFIX}cust-{number % CUSTOMERS:07d}",
            amount=Decimal("12.50"),
            currency="EUR",
            country="DE",
            placed_at=placed,
        )
        await send(orders_topic, ORDERS, order)


def record(enriched: EnrichedOrder) -> None:
    """A line the test reads: a small local append, not worth a thread."""
    with OUT.open("a") as out:
        out.write(
            json.dumps({"order_id": enriched.order_id, "name": enriched.customer_name}) + "\n"
        )


@app.agent(enriched_topic)
async def read_enriched(stream):  # type: ignore[no-untyped-def]
    async for enriched in events(stream, ENRICHED):
        assert isinstance(enriched, EnrichedOrder)
        record(enriched)


if __name__ == "__main__":
    app.main()
