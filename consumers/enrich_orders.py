"""orders → orders.enriched: each order joined with its customer.

Customers come from the `customers` topic, materialised in the replica's
local RocksDB cache; a customer the topic has not carried (yet) is looked up
in PostgreSQL, the system of record, and cached. An order whose customer is
in neither is dead-lettered: no retry will make it valid.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline import BreakerPolicy, Context, LoaderServices, PermanentError, Processor, Table
from topics import CUSTOMERS, ORDERS, ORDERS_ENRICHED
from topics.fx import to_eur
from topics.models import Customer, EnrichedOrder, Order

CUSTOMER_COLUMNS = "customer_id, name, email, country, segment, signed_up_at, updated_at"


async def load_customer(customer_id: str, services: LoaderServices) -> Customer | None:
    """The customer from PostgreSQL (primary-key lookup), or None if there is none."""
    row = await services.db.fetchrow(
        f"SELECT {CUSTOMER_COLUMNS} FROM customers WHERE customer_id = $1", customer_id
    )
    return None if row is None else Customer.model_validate(dict(row))


CUSTOMER_TABLE = Table("customers", CUSTOMERS, loader=load_customer)
"""The customers topic in the replica's cache; PostgreSQL for customers it has not carried."""


async def enrich(order: Order, ctx: Context) -> EnrichedOrder:
    customer = await ctx.table(CUSTOMER_TABLE).get(order.customer_id)
    if customer is None:
        raise PermanentError(
            f"order {order.order_id}: customer {order.customer_id!r} is neither in the "
            "customers topic nor in the customers table"
        )
    return enrich_with(order, customer)


def enrich_with(order: Order, customer: Customer) -> EnrichedOrder:
    return EnrichedOrder(
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount=order.amount,
        currency=order.currency,
        country=order.country,
        placed_at=order.placed_at,
        customer_name=customer.name,
        customer_segment=customer.segment,
        customer_country=customer.country,
        enriched_at=datetime.now(UTC),
        amount_eur=to_eur(order.amount, order.currency),
    )


ENRICH_ORDERS = Processor(
    name="enrich_orders",
    source=ORDERS,
    handler=enrich,
    outputs=(ORDERS_ENRICHED,),
    lanes=8,
    tables=(CUSTOMER_TABLE,),
    database=True,
    dependencies={"postgres": BreakerPolicy(slow_call_s=1.0)},
)
