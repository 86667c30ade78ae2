"""The per-event work every contestant does, so only the framework differs.

decode msgpack → validate Order → look the customer up in a local rocksdict
(raw mode, msgpack values) → build and validate an EnrichedOrder → encode.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import msgpack
from rocksdict import AccessType, Options, Rdict

from topics.models import EnrichedOrder, Order

_db: Rdict | None = None


def customers() -> Rdict:
    """Opened read-only per process, from PEERS_DB."""
    global _db
    if _db is None:
        _db = Rdict(
            os.environ["PEERS_DB"], Options(raw_mode=True), access_type=AccessType.read_only()
        )
    return _db


def enrich(order: Order) -> EnrichedOrder:
    raw = customers().get(order.customer_id.encode())
    customer: dict[str, Any] = msgpack.unpackb(raw) if raw is not None else {}
    return EnrichedOrder(
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount=order.amount,
        currency=order.currency,
        country=order.country,
        placed_at=order.placed_at,
        customer_name=customer.get("name"),
        customer_segment=customer.get("segment", "unknown"),
        customer_country=customer.get("country"),
        enriched_at=datetime.now(UTC),
    )


SLOW_PARTITION = int(os.environ.get("PEERS_SLOW_PARTITION", "-1"))
SLOW_S = float(os.environ.get("PEERS_SLOW_S", "0"))


def is_slow(partition: int) -> bool:
    """bench/bulkhead.py slows one partition's events; elsewhere nothing is slow."""
    return partition == SLOW_PARTITION and SLOW_S > 0


def enrich_bytes(value: bytes) -> bytes:
    """The whole job on raw bytes, for the contestants without our codec."""
    order = Order.model_validate(msgpack.unpackb(value))
    return msgpack.packb(enrich(order).model_dump(mode="json"))
