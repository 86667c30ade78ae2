"""A catalogue for CLI tests: run with PIPELINE_TOPIC_PREFIX so names are unique."""

from pipeline.catalogue import Catalogue, TopicSpec
from tests.unit.models import Sample

SAMPLES = TopicSpec(
    name="samples",
    event_model=Sample,
    key_field="entity_id",
    partitions=4,
    replication_factor=3,
    min_insync_replicas=2,
    retention_ms=3_600_000,
)
CATALOGUE = Catalogue([SAMPLES])
