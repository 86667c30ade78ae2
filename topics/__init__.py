"""The topic catalogue: one declaration per topic. `pipeline topics apply` reads CATALOGUE."""

from pipeline import Catalogue, TopicSpec
from topics.models import CountryRevenue, Customer, EnrichedOrder, Order

DAY_MS = 24 * 3600 * 1000

ORDERS = TopicSpec(
    name="orders",
    event_model=Order,
    key_field="customer_id",
    partitions=12,
    replication_factor=3,
    min_insync_replicas=2,
    retention_ms=7 * DAY_MS,
    event_type="order.placed",
)

CUSTOMERS = TopicSpec(
    name="customers",
    event_model=Customer,
    key_field="customer_id",
    partitions=6,
    replication_factor=3,
    min_insync_replicas=2,
    retention_ms=None,
    cleanup_policy="compact",
    event_type="customer.upserted",
)

ORDERS_ENRICHED = TopicSpec(
    name="orders.enriched",
    event_model=EnrichedOrder,
    key_field="customer_id",
    partitions=12,
    replication_factor=3,
    min_insync_replicas=2,
    retention_ms=3 * DAY_MS,
    event_type="order.enriched",
)

REVENUE_PER_MINUTE = TopicSpec(
    name="revenue.per_minute",
    event_model=CountryRevenue,
    key_field="country",
    partitions=6,
    replication_factor=3,
    min_insync_replicas=2,
    retention_ms=3 * DAY_MS,
    event_type="revenue.updated",
)
"""Each enriched-orders partition's running revenue per country and minute: the latest
update of each (country, minute, source_partition) is its share."""

CATALOGUE = Catalogue([ORDERS, CUSTOMERS, ORDERS_ENRICHED, REVENUE_PER_MINUTE])

__all__ = [
    "CATALOGUE",
    "CUSTOMERS",
    "ORDERS",
    "ORDERS_ENRICHED",
    "REVENUE_PER_MINUTE",
    "CountryRevenue",
    "Customer",
    "EnrichedOrder",
    "Order",
]
