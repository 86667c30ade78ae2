"""A catalogue with the types a document and a validator most easily disagree on.

The example's topics and one more whose event has decimals limited and
free, date-times, enums, optionals, nested models, lists, unions (plain
and discriminated), a mapping, a UUID and a date. The gateway under the
contract fuzzer serves it (PIPELINE_CATALOGUE_MODULE).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints

from pipeline import Catalogue, TopicSpec
from topics import CATALOGUE as EXAMPLE

Text = Annotated[str, StringConstraints(min_length=1, max_length=40)]


class Tier(StrEnum):
    BRONZE = "bronze"
    SILVER = "silver"
    GOLD = "gold"


class Priority(IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    street: Text
    postcode: str | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Card(BaseModel):
    kind: Literal["card"]
    last4: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]


class Transfer(BaseModel):
    kind: Literal["transfer"]
    iban: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")]


class Payment(BaseModel):
    payment_id: UUID
    account_id: Text
    amount: Decimal = Field(gt=0, max_digits=12, decimal_places=2)
    fee: Decimal = Field(ge=0, decimal_places=4)
    rate: Decimal
    balance: Decimal | None = Field(default=None, max_digits=18)
    paid_at: datetime
    settles_at: datetime | None = None
    due_on: date | None = None
    tier: Tier
    priority: Priority = Priority.LOW
    method: Card | Transfer = Field(discriminator="kind")
    billing: Address | None = None
    tags: list[Text] = Field(default_factory=list, max_length=10)
    quantities: dict[str, int] = Field(default_factory=dict)
    reference: int | str
    score: float = Field(ge=0, le=1)
    flagged: bool = False


PAYMENTS = TopicSpec(
    name="payments",
    event_model=Payment,
    key_field="account_id",
    partitions=3,
    replication_factor=1,
    event_type="payment.made",
)

CATALOGUE = Catalogue([*EXAMPLE, PAYMENTS])
