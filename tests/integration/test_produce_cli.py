"""`pipeline produce`: every bad line is reported, kept and never published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.kafka.connect import connect
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import decode_value
from tests.integration.catalogues.v1 import SAMPLES
from tests.support import read_all, run_cli

pytestmark = pytest.mark.integration

GOOD = {
    "entity_id": "e1",
    "happened_at": "2026-11-28T10:00:00Z",
    "amount": "12.50",
    "reference": "6f1c8f0e-0d7a-4a53-9a43-4a0f7d0d2b11",
}


def line(**changes: object) -> str:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not None})


@pytest.fixture
def env(settings: PipelineSettings, unique: str) -> dict[str, str]:
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": unique,
        "PIPELINE_CATALOGUE_MODULE": "tests.integration.catalogues.v1",
    }
    applied = run_cli("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    return env


async def test_bad_lines_are_reported_kept_and_not_published(
    env: dict[str, str], settings: PipelineSettings, unique: str, tmp_path: Path
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(
        "\n".join(
            [
                line(entity_id="good-1"),
                '{"entity_id": "broken", ',
                line(entity_id="bad-type", amount="twelve"),
                line(entity_id=None),
                "",
                line(entity_id="good-2", count=3),
            ]
        )
        + "\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    result = run_cli(
        "produce", "--topic", "samples", "--file", str(source), "--rejects", str(rejects), env=env
    )
    assert result.returncode == 1, result.stderr
    stderr = " ".join(result.stderr.split())
    assert (
        "rejected line 2: not valid JSON: "
        "Expecting property name enclosed in double quotes at column 24" in stderr
    )
    assert "rejected line 3, field 'amount': Input should be a valid decimal" in stderr
    assert "rejected line 4, field 'entity_id': missing key field 'entity_id'" in stderr
    assert "2 published to " in stderr and "3 rejected" in stderr

    kept = [json.loads(row) for row in rejects.read_text().splitlines()]
    assert [(r["line"], r["field"]) for r in kept] == [(2, None), (3, "amount"), (4, "entity_id")]
    assert kept[1]["input"] == line(entity_id="bad-type", amount="twelve")

    spec = SAMPLES.with_name(unique + "samples")
    records = await read_all(connect(settings), spec.name)
    assert sorted(decode_value(spec, r.value).entity_id for r in records) == ["good-1", "good-2"]


async def test_allow_rejects_exits_zero_and_stdin_works(
    env: dict[str, str], settings: PipelineSettings, unique: str
) -> None:
    text = line(entity_id="a") + "\nnot json\n" + line(entity_id="b") + "\n"
    result = run_cli(
        "produce", "-t", "samples", "-f", "-", "--allow-rejects", env=env, input_text=text
    )
    assert result.returncode == 0, result.stderr
    assert len(await read_all(connect(settings), unique + "samples")) == 2


async def test_all_good_file_exits_zero_with_rate_limit(
    env: dict[str, str], settings: PipelineSettings, unique: str, tmp_path: Path
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text("".join(line(entity_id=f"k{i}", count=i) + "\n" for i in range(300)))
    result = run_cli(
        "produce", "--topic", "samples", "--file", str(source), "--rate", "1000/s", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "300 published" in result.stderr
    assert len(await read_all(connect(settings), unique + "samples")) == 300


def test_unknown_topic_is_refused_before_reading(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(line() + "\n")
    result = run_cli("produce", "--topic", "nope", "--file", str(source), env=env)
    assert result.returncode == 2
    assert "unknown topic 'nope': it is not in the catalogue. Known topics: samples." in " ".join(
        result.stderr.split()
    )


def test_bad_rate_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text(line() + "\n")
    result = run_cli(
        "produce", "--topic", "samples", "--file", str(source), "--rate", "fast", env=env
    )
    assert result.returncode == 2
    assert "'fast' is not a rate" in result.stderr
