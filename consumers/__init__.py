"""The application's processors: `pipeline worker NAME` looks NAME up in PROCESSORS."""

from typing import Any

from consumers.enrich_orders import ENRICH_ORDERS
from consumers.order_stats import ORDER_STATS
from pipeline import Processor

PROCESSORS: dict[str, Processor[Any]] = {
    processor.name: processor for processor in (ENRICH_ORDERS, ORDER_STATS)
}
