"""Event models of the example domain: orders, customers, enriched orders.

`extra="ignore"` and defaults on every field added later let old and new
producers and consumers read each other (DESIGN.md, wire format).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Currency = Literal["EUR", "USD", "GBP", "CHF", "SEK", "PLN", "JPY"]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class EventModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class OrderLine(EventModel):
    sku: Identifier
    quantity: int = Field(ge=1, le=10_000)
    unit_price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)


class Order(EventModel):
    """An order placed by a customer; keyed by customer so a customer's orders stay in order."""

    order_id: Identifier
    customer_id: Identifier
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    currency: Currency
    country: CountryCode
    placed_at: datetime
    lines: list[OrderLine] = Field(default_factory=list)
    channel: Literal["web", "app", "store", "phone"] = "web"


class Customer(EventModel):
    """Reference data, compacted: the latest record per customer is the truth."""

    customer_id: Identifier
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    email: Annotated[str, StringConstraints(max_length=320)] = ""
    country: CountryCode
    segment: Literal["consumer", "business", "vip"] = "consumer"
    signed_up_at: datetime
    updated_at: datetime


class EnrichedOrder(EventModel):
    """An order joined with its customer, produced by consumers/enrich_orders."""

    order_id: Identifier
    customer_id: Identifier
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    currency: Currency
    country: CountryCode
    placed_at: datetime
    customer_name: str | None = None
    customer_segment: Literal["consumer", "business", "vip", "unknown"] = "unknown"
    customer_country: CountryCode | None = None
    enriched_at: datetime
    amount_eur: Decimal | None = Field(default=None, max_digits=16, decimal_places=2)
    """The amount at the reference rates of topics.fx (added later: older events lack it)."""


class CountryRevenue(EventModel):
    """Revenue of one country in one minute of order time, as one partition of the enriched
    orders has seen it so far (consumers/revenue_per_minute: a window updated per order)."""

    country: CountryCode
    minute: datetime
    source_partition: int = Field(ge=0)
    revenue_eur: Decimal = Field(max_digits=18, decimal_places=2)
