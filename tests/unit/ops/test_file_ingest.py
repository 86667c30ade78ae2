from pipeline.ops.file_ingest import Reject, parse_line
from tests.unit.models import OPTIONAL_KEY_SPEC, SAMPLE_SPEC, Sample

GOOD = (
    '{"entity_id": "e1", "happened_at": "2026-01-01T00:00:00Z", "amount": "2.50", '
    '"reference": "6f1c8f0e-0d7a-4a53-9a43-4a0f7d0d2b11"}'
)


def test_good_line_becomes_an_event() -> None:
    event = parse_line(SAMPLE_SPEC, 1, GOOD)
    assert isinstance(event, Sample)
    assert event.entity_id == "e1"


def test_malformed_json_reports_line_and_column() -> None:
    reject = parse_line(SAMPLE_SPEC, 7, '{"entity_id": ')
    assert isinstance(reject, Reject)
    assert reject.line == 7
    assert reject.describe().startswith("line 7: not valid JSON")


def test_array_is_not_an_event() -> None:
    reject = parse_line(SAMPLE_SPEC, 2, "[1, 2]")
    assert isinstance(reject, Reject)
    assert reject.reason == "expected a JSON object, got list"


def test_wrong_type_names_the_field_path() -> None:
    reject = parse_line(SAMPLE_SPEC, 3, GOOD.replace('"2.50"', '"lots"'))
    assert isinstance(reject, Reject)
    assert reject.field == "amount"
    assert reject.reason == "Input should be a valid decimal"


def test_missing_key_field_is_named() -> None:
    reject = parse_line(OPTIONAL_KEY_SPEC, 4, GOOD)
    assert isinstance(reject, Reject)
    assert reject.field == "optional_key"
    assert "missing key field 'optional_key'" in reject.reason
