import pytest

from pipeline.catalogue import Catalogue, TopicSpec, load_catalogue
from pipeline.errors import ConfigError, UnknownTopicError
from tests.unit.models import SAMPLE_SPEC, Sample


def test_key_field_must_exist_on_the_model() -> None:
    with pytest.raises(ConfigError, match="key field 'nope' is not a field of Sample"):
        TopicSpec(name="x", event_model=Sample, key_field="nope")


def test_illegal_topic_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a legal Kafka topic name"):
        TopicSpec(name="has space", event_model=Sample, key_field="entity_id")


def test_unknown_topic_lists_known_ones() -> None:
    catalogue = Catalogue([SAMPLE_SPEC])
    with pytest.raises(UnknownTopicError, match="Known topics: samples"):
        catalogue.get("orders")


def test_prefix_renames_topics_but_logical_names_still_resolve() -> None:
    catalogue = Catalogue([SAMPLE_SPEC]).with_prefix("dev.")
    assert catalogue.get("samples").name == "dev.samples"
    assert catalogue.get("samples.dlq").name == "dev.samples.dlq"
    assert [spec.name for spec in catalogue.with_dlqs()] == ["dev.samples", "dev.samples.dlq"]


def test_duplicate_declaration_is_refused() -> None:
    with pytest.raises(ConfigError, match="declared twice"):
        Catalogue([SAMPLE_SPEC, SAMPLE_SPEC])


def test_the_project_catalogue_loads() -> None:
    catalogue = load_catalogue("topics")
    assert {spec.name for spec in catalogue} == {
        "orders",
        "customers",
        "orders.enriched",
        "revenue.per_minute",
    }
    assert catalogue.get("customers").cleanup_policy == "compact"


def test_missing_catalogue_module_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PIPELINE_CATALOGUE_MODULE"):
        load_catalogue("no_such_module_here")
