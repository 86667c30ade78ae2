"""Reference exchange rates: the example domain reports revenue in EUR.

Fixed rates keep the example deterministic, so the demo can check the
database totals against the published orders to the cent.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

EUR_PER_UNIT: dict[str, Decimal] = {
    "EUR": Decimal("1"),
    "USD": Decimal("0.92"),
    "GBP": Decimal("1.17"),
    "CHF": Decimal("1.04"),
    "SEK": Decimal("0.087"),
    "PLN": Decimal("0.23"),
    "JPY": Decimal("0.0062"),
}
CENT = Decimal("0.01")


def to_eur(amount: Decimal, currency: str) -> Decimal:
    return (amount * EUR_PER_UNIT[currency]).quantize(CENT, rounding=ROUND_HALF_EVEN)
