"""The application's processors: `pipeline worker NAME` looks NAME up in PROCESSORS."""

from typing import Any

from consumers.enrich_orders import ENRICH_ORDERS
from consumers.order_stats import ORDER_STATS
from consumers.revenue_per_minute import REVENUE_PER_MINUTE_PROCESSOR
from pipeline import Processor

PROCESSORS: dict[str, Processor[Any]] = {
    processor.name: processor
    for processor in (ENRICH_ORDERS, ORDER_STATS, REVENUE_PER_MINUTE_PROCESSOR)
}
