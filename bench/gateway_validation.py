"""What checking each event against the published schema costs the gateway, per event.

The gateway validates an event in two steps since issue 48: the JSON
Schema its OpenAPI document publishes (jsonschema-rs), then the model
(pipeline.gateway.contract). The baseline is the model alone, as before.
Both run interleaved in this process, `--rounds` times, on the example
catalogue's orders as a client sends them (JSON, decoded), and on the
awkward catalogue's payments (tests/integration/contract_fuzz).

Prints a line per round and, last, one JSON line:
{"orders": {"contract_us": m, "model_us": m, "ratio": {"median": r, "min": r, "max": r}},
 "payments": {...}}

Run: .venv/bin/python bench/gateway_validation.py [--events 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import BaseModel

from pipeline.gateway.contract import EventContract
from producers.loadgen import OrderGenerator
from tests.integration.contract_fuzz.awkward_catalogue import Payment
from topics import Order


def orders(count: int) -> list[dict[str, Any]]:
    return [json.loads(order.model_dump_json()) for order in OrderGenerator(10_000).batch(count)]


def payments(count: int) -> list[dict[str, Any]]:
    return [
        {
            "payment_id": str(uuid.uuid4()),
            "account_id": f"acct-{index % 500}",
            "amount": f"{index % 9000 + 1}.{index % 100:02d}",
            "fee": "0.0125",
            "rate": 1.0 + index / count,
            "balance": "-1200.5",
            "paid_at": "2026-12-07T10:00:00Z",
            "tier": "gold",
            "method": {"kind": "transfer", "iban": "DE44500105175407324931"},
            "billing": {"street": "Hauptstr. 1", "country": "DE"},
            "tags": ["a", "b"],
            "quantities": {"x": 1},
            "reference": index,
            "score": 0.5,
        }
        for index in range(count)
    ]


def per_event_us(check: Any, events: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    for event in events:
        check(event)
    return (time.perf_counter() - started) / len(events) * 1e6


def measure(model: type[BaseModel], events: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    contract = EventContract.of(model)
    for event in events[:50]:  # both must take every event: the comparison is of the happy path
        assert isinstance(contract.build(event), model), contract.build(event)
    contract_us, model_us = [], []
    for round_ in range(rounds):
        model_us.append(per_event_us(model.model_validate, events))
        contract_us.append(per_event_us(contract.build, events))
        print(
            f"{model.__name__} round {round_ + 1}: model {model_us[-1]:.1f} µs, "
            f"contract {contract_us[-1]:.1f} µs per event"
        )
    ratios = [c / m for c, m in zip(contract_us, model_us, strict=True)]
    return {
        "contract_us": round(statistics.median(contract_us), 2),
        "model_us": round(statistics.median(model_us), 2),
        "ratio": {
            "median": round(statistics.median(ratios), 2),
            "min": round(min(ratios), 2),
            "max": round(max(ratios), 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000, help="events per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()
    figures = {
        "orders": measure(Order, orders(args.events), args.rounds),
        "payments": measure(Payment, payments(args.events), args.rounds),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
