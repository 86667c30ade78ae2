"""v1's samples at schema version 2, changed compatibly and not."""

import dataclasses

from pydantic import BaseModel, ConfigDict

from pipeline.catalogue import Catalogue
from tests.integration.catalogues.v1 import SAMPLES
from tests.unit.models import Sample


class SampleWithSource(Sample):
    """An optional field added: every reader keeps working."""

    source: str = ""


class SampleRenamed(BaseModel):
    """`amount` renamed to `total`, `count` narrowed to small numbers: old events break it."""

    model_config = ConfigDict(extra="ignore")
    entity_id: str
    happened_at: str
    total: float
    reference: str
    note: str = ""
    count: int = 0


COMPATIBLE = Catalogue(
    [dataclasses.replace(SAMPLES, event_model=SampleWithSource, schema_version=2)]
)
INCOMPATIBLE = Catalogue(
    [dataclasses.replace(SAMPLES, event_model=SampleRenamed, schema_version=2)]
)
