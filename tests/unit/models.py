"""A model with every awkward type the wire format must carry."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from pipeline.catalogue import TopicSpec


class Sample(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entity_id: str
    happened_at: datetime
    amount: Decimal
    reference: UUID
    note: str = ""
    count: int = 0
    tags: list[str] = []
    optional_key: str | None = None


class Other(BaseModel):
    entity_id: str


SAMPLE_SPEC = TopicSpec(name="samples", event_model=Sample, key_field="entity_id", partitions=4)
OPTIONAL_KEY_SPEC = TopicSpec(
    name="optional-keys", event_model=Sample, key_field="optional_key", partitions=4
)
