"""What decoding and validating an order costs, by the way it is done: is the codec's choice right?

Issue 45 asked for pydantic's `model_validate` measured against a
`TypeAdapter` and against msgspec on this workload. Per order (the example
`Order`: ids, a Decimal amount, a pattern-checked country, a datetime, a
few lines), from the msgpack bytes the wire carries:

- codec: `pipeline.wire.codec.decode_value`, the worker's own path (msgpack,
  then the model's validator called directly);
- model_validate: msgpack, then `Order.model_validate`;
- type_adapter: msgpack, then a `TypeAdapter(Order)`;
- msgspec: `msgspec.msgpack.Decoder` into a msgspec Struct with the same
  fields and constraints (no pydantic model comes out: a handler typed on
  `Order` could not take it).

And the encode side: `pipeline.wire.codec.encode_events` against
`model_dump(mode="json")` + `msgpack.packb`, and msgspec's encoder.

Contestants run interleaved in --rounds rounds of --events each, each
keeping what it made as a batch does, under the worker's own garbage
collector settings (pipeline.runtime.gc_tuning: with Python's defaults the
collector's passes over the kept models cost the codec two thirds of its
rate here, which is why the worker tunes them); medians and spreads of
events/s. Ends with one JSON line of the figures.

Run: .venv/bin/python bench/decode.py [--events 20000] [--rounds 5]
(msgspec is in the bench extras: pip install -e '.[bench]'; without it, its rows are left out)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack
from pydantic import TypeAdapter

from bench.peers.environment import versions_of_every_contestant
from pipeline.runtime.gc_tuning import tune_for_throughput
from pipeline.wire.codec import decode_value, encode_events
from producers.loadgen import OrderGenerator
from topics import ORDERS
from topics.models import Order

try:
    import msgspec
except ImportError:  # a bench extra; its rows are left out without it
    msgspec = None
else:
    # Module level: the annotations are strings (from __future__) resolved in this namespace.
    MsgspecId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]

    class MsgspecLine(msgspec.Struct, frozen=True):
        sku: MsgspecId
        quantity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]
        unit_price: Decimal  # msgspec takes no bound on a Decimal: checked after

    class MsgspecOrder(msgspec.Struct, frozen=True):
        order_id: MsgspecId
        customer_id: MsgspecId
        amount: Decimal
        currency: Literal["EUR", "USD", "GBP", "CHF", "SEK", "PLN", "JPY"]
        country: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
        placed_at: datetime
        lines: list[MsgspecLine] = msgspec.field(default_factory=list)
        channel: Literal["web", "app", "store", "phone"] = "web"


def non_negative(order: Any) -> Any:
    """The amounts' bounds, which msgspec cannot declare on a Decimal: checked as pydantic does."""
    if order.amount < 0 or any(line.unit_price < 0 for line in order.lines):
        raise ValueError("a negative amount")
    return order


def msgspec_contestants(values: list[bytes]) -> dict[str, Callable[[], object]]:
    """msgspec's decoder and encoder on a Struct shaped like Order; empty without msgspec."""
    if msgspec is None:
        print("msgspec is not installed: its rows are left out", file=sys.stderr)
        return {}
    decoder = msgspec.msgpack.Decoder(MsgspecOrder)
    encoder = msgspec.msgpack.Encoder(decimal_format="string")
    structs = [decoder.decode(value) for value in values]
    return {
        "decode/msgspec": lambda: [non_negative(decoder.decode(value)) for value in values],
        "encode/msgspec": lambda: [encoder.encode(struct) for struct in structs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tune_for_throughput()
    orders = OrderGenerator(20_000).batch(args.events)
    values = [encoded.value or b"" for encoded in encode_events(ORDERS, orders)]
    adapter = TypeAdapter(Order)
    contestants: dict[str, Callable[[], Any]] = {
        "decode/codec": lambda: [decode_value(ORDERS, value) for value in values],
        "decode/model_validate": lambda: [
            Order.model_validate(msgpack.unpackb(value)) for value in values
        ],
        "decode/type_adapter": lambda: [
            adapter.validate_python(msgpack.unpackb(value)) for value in values
        ],
        "encode/codec": lambda: encode_events(ORDERS, orders),
        "encode/model_dump": lambda: [
            msgpack.packb(order.model_dump(mode="json")) for order in orders
        ],
        **msgspec_contestants(values),
    }
    rates: dict[str, list[float]] = {name: [] for name in contestants}
    for round_ in range(args.rounds):
        turn = round_ % len(contestants)
        names = list(contestants)
        for name in names[turn:] + names[:turn]:
            started = time.perf_counter()
            contestants[name]()
            rates[name].append(args.events / (time.perf_counter() - started))
    figures: dict[str, Any] = {}
    print(f"events/s over {args.rounds} rounds of {args.events:,} orders: median (min–max)")
    for name, found in rates.items():
        median = statistics.median(found)
        figures[name] = {
            "median": round(median),
            "min": round(min(found)),
            "max": round(max(found)),
        }
        print(f"  {name:22s} {median:>10,.0f} ({min(found):,.0f}–{max(found):,.0f})")
    for side in ("decode", "encode"):
        base = figures[f"{side}/codec"]["median"]
        for name in list(figures):
            if name.startswith(side) and name != f"{side}/codec":
                figures[f"{name}_vs_codec"] = round(figures[name]["median"] / base, 2)
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
