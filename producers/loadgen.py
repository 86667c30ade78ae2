"""A load generator for the example domain: customers and their orders.

Realistic enough to exercise what matters downstream: a few customers place
most orders (Zipf-skewed ids make hot keys and uneven partitions), amounts
are log-normal, currencies follow countries, and the rate can step or spike.

Run: python -m producers.loadgen --rate 2000 --duration 30 --profile spike
(or --jsonl orders.jsonl --count 1000 to write a file for `pipeline produce`)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pipeline import EventProducer
from pipeline.local import TokenBucket, local_settings
from topics import CATALOGUE, CUSTOMERS, ORDERS
from topics.models import Currency, Customer, Order, OrderLine

COUNTRIES: dict[str, Currency] = {
    "DE": "EUR",
    "FR": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "IT": "EUR",
    "US": "USD",
    "GB": "GBP",
    "CH": "CHF",
    "SE": "SEK",
    "PL": "PLN",
    "JP": "JPY",
}
# Rough share of orders per country: a store with most customers in Europe.
COUNTRY_WEIGHTS = [22, 14, 8, 7, 7, 18, 10, 3, 3, 5, 3]
FIRST = ["Ada", "Ben", "Chloé", "Dmitri", "Eva", "Farah", "Gus", "Hana", "Iñigo", "Jun", "Kai"]
LAST = ["Lovelace", "Okafor", "Müller", "Nakamura", "Rossi", "Silva", "Novak", "Berg", "Diaz"]
Profile = Literal["steady", "step", "spike"]


def customer_id(index: int, prefix: str = "") -> str:
    return f"{prefix}cust-{index:07d}"


class CustomerGenerator:
    def __init__(self, count: int, seed: int = 1, id_prefix: str = "") -> None:
        self.count = count
        self.rng = random.Random(seed)
        self.id_prefix = id_prefix

    def __iter__(self) -> Iterator[Customer]:
        now = datetime.now(UTC)
        countries = list(COUNTRIES)
        for index in range(self.count):
            first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
            signed_up = now - timedelta(days=self.rng.randrange(1, 2000))
            yield Customer(
                customer_id=customer_id(index, self.id_prefix),
                name=f"{first} {last}",
                email=f"{first.lower()}.{last.lower()}{index}@example.com",
                country=self.rng.choices(countries, COUNTRY_WEIGHTS)[0],
                segment=self.rng.choices(["consumer", "business", "vip"], [85, 12, 3])[0],
                signed_up_at=signed_up,
                updated_at=now,
            )


class OrderGenerator:
    """Orders whose customer ids follow a Zipf law (s≈1.1): a long tail of rare buyers.

    `unknown_share` of the orders name a customer that exists nowhere, as a
    buggy upstream would: downstream they must end in the dead-letter queue.
    """

    def __init__(
        self,
        customers: int,
        seed: int = 2,
        skew: float = 1.1,
        id_prefix: str = "",
        unknown_share: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.id_prefix = id_prefix
        self.unknown_share = unknown_share
        weights = [1.0 / (rank**skew) for rank in range(1, customers + 1)]
        self.cumulative = list(itertools.accumulate(weights))
        # Shuffle which ids are hot so hot keys spread over partitions.
        self.ids = list(range(customers))
        self.rng.shuffle(self.ids)
        self.sequence = 0

    def _customer(self) -> str:
        if self.unknown_share and self.rng.random() < self.unknown_share:
            return f"{self.id_prefix}unknown-{self.rng.randrange(1000):03d}"
        rank = bisect.bisect_left(self.cumulative, self.rng.random() * self.cumulative[-1])
        return customer_id(self.ids[rank], self.id_prefix)

    def next(self) -> Order:
        self.sequence += 1
        country = self.rng.choices(list(COUNTRIES), COUNTRY_WEIGHTS)[0]
        lines = [
            OrderLine(
                sku=f"sku-{self.rng.randrange(20_000):05d}",
                quantity=self.rng.choice([1, 1, 1, 2, 2, 3, 5]),
                unit_price=Decimal(round(math.exp(self.rng.gauss(3.0, 0.9)), 2)).quantize(
                    Decimal("0.01")
                ),
            )
            for _ in range(self.rng.choice([1, 1, 1, 2, 2, 3, 4]))
        ]
        amount = sum((line.unit_price * line.quantity for line in lines), Decimal("0.00"))
        return Order(
            order_id=f"{self.id_prefix}ord-{self.sequence:010d}-{self.rng.getrandbits(24):06x}",
            customer_id=self._customer(),
            amount=amount,
            currency=COUNTRIES[country],
            country=country,
            placed_at=datetime.now(UTC),
            lines=lines,
            channel=self.rng.choices(["web", "app", "store", "phone"], [50, 35, 10, 5])[0],
        )

    def batch(self, count: int) -> list[Order]:
        return [self.next() for _ in range(count)]


def rate_at(profile: Profile, base_rate: float, elapsed_s: float, duration_s: float) -> float:
    """Target events/s at a moment of the run.

    steady: the base rate throughout; step: doubles at half time; spike: five
    times the base rate for the middle tenth of the run.
    """
    if profile == "step":
        return base_rate * (2 if elapsed_s >= duration_s / 2 else 1)
    if profile == "spike":
        middle = duration_s / 2
        return base_rate * (5 if abs(elapsed_s - middle) <= duration_s / 20 else 1)
    return base_rate


async def paced_chunks(rate: float, duration_s: float, profile: Profile) -> AsyncIterator[int]:
    """Chunk sizes, each yielded when the profile's rate allows it: twenty a second."""
    started = time.monotonic()
    bucket = TokenBucket(rate)
    while (elapsed := time.monotonic() - started) < duration_s:
        bucket.rate_per_s = rate_at(profile, rate, elapsed, duration_s)
        chunk = max(1, int(bucket.rate_per_s / 20))
        await bucket.acquire(chunk)
        yield chunk


async def run(
    rate: float, duration_s: float, profile: Profile, customers: int, seed_customers: bool
) -> None:
    settings = local_settings()
    # The catalogue's topics as this environment names them (PIPELINE_TOPIC_PREFIX).
    catalogue = CATALOGUE.with_prefix(settings.topic_prefix)
    orders_topic, customers_topic = catalogue.get(ORDERS.name), catalogue.get(CUSTOMERS.name)
    async with EventProducer(settings) as producer:
        if seed_customers:
            batch: list[Customer] = []
            for customer in CustomerGenerator(customers):
                batch.append(customer)
                if len(batch) == 2000:
                    await producer.publish_many(customers_topic, batch)
                    batch = []
            await producer.publish_many(customers_topic, batch)
            print(f"published {customers} customers to {customers_topic.name}", file=sys.stderr)
        orders = OrderGenerator(customers)
        started = time.monotonic()
        published = 0
        async for chunk in paced_chunks(rate, duration_s, profile):
            await producer.publish_many(orders_topic, orders.batch(chunk))
            published += chunk
        print(
            f"published {published} orders to {orders_topic.name} "
            f"in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )


def write_jsonl(path: Path, count: int, customers: int) -> None:
    """Orders as JSON lines, for `pipeline produce --file` (nothing is published)."""
    orders = OrderGenerator(customers)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(count):
            out.write(orders.next().model_dump_json() + "\n")
    print(f"wrote {count} orders to {path}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Publish customers and Zipf-skewed orders to the catalogue topics "
        "(under PIPELINE_TOPIC_PREFIX), or write orders to a JSONL file.",
        epilog="Examples: python -m producers.loadgen --rate 2000 --duration 30 --profile spike; "
        "python -m producers.loadgen --jsonl orders.jsonl --count 1000",
    )
    parser.add_argument("--rate", type=float, default=1000, help="base orders per second")
    parser.add_argument("--duration", type=float, default=30, help="seconds to run")
    parser.add_argument("--profile", choices=["steady", "step", "spike"], default="steady")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--no-customers", action="store_true", help="skip publishing customers")
    parser.add_argument(
        "--jsonl", type=Path, help="write orders to this file as JSON lines instead of publishing"
    )
    parser.add_argument("--count", type=int, default=1000, help="orders to write with --jsonl")
    args = parser.parse_args()
    if args.jsonl is not None:
        write_jsonl(args.jsonl, args.count, args.customers)
        return
    asyncio.run(run(args.rate, args.duration, args.profile, args.customers, not args.no_customers))


if __name__ == "__main__":
    main()
