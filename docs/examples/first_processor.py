"""The getting-started page's example: two topics, one processor, one test.

Included in docs/getting-started.md as it is and run by tests/unit/test_docs_examples.py,
so the page cannot show code that does not work.
"""

from pydantic import BaseModel

from pipeline import Catalogue, Context, Processor, TestPipeline, TopicSpec


class Order(BaseModel):
    order_id: str
    amount_cents: int


class Receipt(BaseModel):
    order_id: str
    total: str


ORDERS = TopicSpec("orders", Order, key_field="order_id", partitions=6)
RECEIPTS = TopicSpec("receipts", Receipt, key_field="order_id", partitions=6)
CATALOGUE = Catalogue([ORDERS, RECEIPTS])


async def receipt(order: Order, ctx: Context) -> Receipt:
    return Receipt(order_id=order.order_id, total=f"{order.amount_cents / 100:.2f} EUR")


RECEIPTS_PROCESSOR = Processor("receipts", ORDERS, receipt, outputs=(RECEIPTS,))
PROCESSORS = {"receipts": RECEIPTS_PROCESSOR}


async def test_every_order_gets_a_receipt() -> None:
    async with TestPipeline(RECEIPTS_PROCESSOR) as pipeline:
        await pipeline.publish(ORDERS, [Order(order_id="o-1", amount_cents=1250)])
        await pipeline.processed()
        assert pipeline.outputs(RECEIPTS) == [Receipt(order_id="o-1", total="12.50 EUR")]
        assert pipeline.dead_letters() == []
