"""What `topics apply` registers and refuses when an event model changes (no broker needed)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from pipeline.catalogue import TopicSpec
from pipeline.ops.schema_registry import (
    check_schemas,
    registered_schemas,
    registry_entries,
)
from pipeline.ops.topics import keys_of


class ItemV1(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sku: str
    price: float


class ItemV2(ItemV1):
    colour: str = ""


class ItemRenamed(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sku: str
    cost: float


def spec(model: type[BaseModel], version: int = 1, **more: Any) -> TopicSpec[BaseModel]:
    return TopicSpec("items", model, "sku", event_type="Item", schema_version=version, **more)


def registry_after(*specs: TopicSpec[BaseModel]) -> dict[str, dict[str, Any]]:
    """The registry's entries after applying each spec in turn (later keys win, as compaction)."""
    entries: dict[str, dict[str, Any]] = {}
    for applied_at, each in enumerate(specs):
        entries |= registry_entries(each, applied_at)
    return entries


def test_a_first_apply_registers_version_one() -> None:
    result = check_schemas([spec(ItemV1)], {})
    assert result.errors == [] and result.changes == {"items": "schema v1 registered"}


def test_every_applied_version_is_kept_and_the_key_entry_is_still_read() -> None:
    entries = registry_after(spec(ItemV1), spec(ItemV2, 2))
    versions = registered_schemas(entries)["items"]
    assert [v.version for v in versions] == [1, 2]
    assert keys_of(entries) == {"items": "sku"}


def test_the_same_model_again_changes_nothing() -> None:
    registered = registered_schemas(registry_after(spec(ItemV1)))
    result = check_schemas([spec(ItemV1)], registered)
    assert result.errors == [] and result.changes == {}


def test_adding_an_optional_field_is_registered_as_the_next_version() -> None:
    registered = registered_schemas(registry_after(spec(ItemV1)))
    result = check_schemas([spec(ItemV2, 2)], registered)
    assert result.errors == []
    assert result.changes == {"items": "schema v1 → v2 (backward compatible)"}


def test_a_rename_is_refused_with_its_diff_and_what_to_do() -> None:
    registered = registered_schemas(registry_after(spec(ItemV1)))
    result = check_schemas([spec(ItemRenamed, 2)], registered)
    assert len(result.errors) == 1 and result.changes == {}
    error = result.errors[0]
    assert "schema v1 → v2 is not backward compatible" in error
    assert "cost: is required by the reader and absent from events (renamed from 'price'?)" in error
    assert "--allow-incompatible" in error


def test_allow_incompatible_turns_the_refusal_into_a_warning() -> None:
    registered = registered_schemas(registry_after(spec(ItemV1)))
    result = check_schemas([spec(ItemRenamed, 2)], registered, allow_incompatible=True)
    assert result.errors == []
    assert "applied anyway" in result.warnings[0] and "cost:" in result.warnings[0]
    assert result.changes == {"items": "schema v1 → v2 (incompatible, allowed)"}


def test_an_upcaster_from_the_registered_version_answers_for_old_bodies() -> None:
    registered = registered_schemas(registry_after(spec(ItemV1)))

    def price_to_cost(fields: dict[str, Any]) -> dict[str, Any]:
        return {"sku": fields["sku"], "cost": fields["price"]}

    upcast = spec(ItemRenamed, 2, upcasters={1: price_to_cost})
    assert check_schemas([upcast], registered).errors == []
    # ... but not for old consumers reading new bodies: full still refuses.
    full = spec(ItemRenamed, 2, upcasters={1: price_to_cost}, compatibility="full")
    (error,) = check_schemas([full], registered).errors
    assert "price: is required by the reader" in error


def test_an_older_catalogue_than_the_cluster_is_refused() -> None:
    registered = registered_schemas(registry_after(spec(ItemV1), spec(ItemV2, 2)))
    (error,) = check_schemas([spec(ItemV1, 1)], registered).errors
    assert "older than version 2 registered" in error


def test_dead_letter_topics_carry_no_schema() -> None:
    dlq = spec(ItemV1).dlq_spec()
    assert list(registry_entries(dlq, 0)) == ["items.dlq"]
    assert check_schemas([dlq], {}).changes == {}
