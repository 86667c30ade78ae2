"""Structured logs: a handler's line names its record; a partition's line names its partition."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from pipeline.errors import ConfigError
from pipeline.processor import Context, Processor
from pipeline.telemetry import logs
from pipeline.telemetry.logs import JsonFormatter, TextFormatter, choose_format, fields_from
from pipeline.testing import TestPipeline
from tests.unit.runtime.support import OUTPUT, SOURCE, Done, Step


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logs._process_fields.clear()


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_a_handlers_lines_carry_its_record_and_event(json_lines: io.StringIO) -> None:
    logs.set_process_fields(processor="noisy", replica="r7")

    async def noisy(step: Step, ctx: Context) -> Done:
        ctx.log.warning('handling step %d \u00e9"quoted"', step.n)
        return Done(key=step.key, n=step.n)

    processor = Processor("noisy", SOURCE, noisy, outputs=(OUTPUT,))
    async with TestPipeline(processor) as pipeline:
        deliveries = await pipeline.publish(SOURCE, [Step(key="k", n=n) for n in range(3)])
        await pipeline.processed()
    handled = [line for line in parsed(json_lines) if str(line["message"]).startswith("handling")]
    assert len(handled) == 3
    for line, delivery in zip(handled, deliveries, strict=True):
        assert line["processor"] == "noisy" and line["replica"] == "r7"
        assert line["topic"] == SOURCE.name and line["partition"] == delivery.partition
        assert line["offset"] == delivery.offset
        assert isinstance(line["event_id"], str) and line["event_id"]
        assert line["level"] == "WARNING" and str(line["ts"]).endswith("Z")
    assert handled[0]["message"] == 'handling step 0 \u00e9"quoted"'


def test_an_exception_is_one_line_with_its_traceback(json_lines: io.StringIO) -> None:
    try:
        raise ValueError("bad \x00 bytes \udcff")
    except ValueError:
        logging.getLogger("pipeline.test").exception("it broke")
    (line,) = parsed(json_lines)
    assert line["message"] == "it broke"
    assert "Traceback" in str(line["exception"]) and "ValueError" in str(line["exception"])


def test_fields_end_with_their_block_and_a_failing_source_does_not_lose_the_line(
    json_lines: io.StringIO,
) -> None:
    log = logging.getLogger("pipeline.test")
    with fields_from(lambda: {"topic": "t", "partition": 2}):
        log.info("inside")
    log.info("outside")

    def broken() -> dict[str, object]:
        raise KeyError("gone")

    with fields_from(broken):
        log.info("still written")
    inside, outside, written = parsed(json_lines)
    assert inside["topic"] == "t" and inside["partition"] == 2
    assert "topic" not in outside
    assert written["message"] == "still written" and "gone" in str(written["fields_error"])


def test_text_lines_name_the_place() -> None:
    record = logging.LogRecord("pipeline.test", logging.INFO, "f", 1, "slow", None, None)
    with fields_from(lambda: {"topic": "orders", "partition": 1, "offset": 9, "event_id": "e1"}):
        text = TextFormatter("%(levelname)s %(message)s").format(record)
    assert text == "INFO slow [orders-1@9 event e1]"


def test_the_format_is_chosen_by_option_then_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(logs.LOG_FORMAT_ENV, "text")
    assert choose_format(None) == "text"
    assert choose_format("json") == "json"
    monkeypatch.setenv(logs.LOG_FORMAT_ENV, "auto")
    assert choose_format(None) == "json"  # pytest's stderr is not a terminal
    with pytest.raises(ConfigError, match="PIPELINE_LOG_FORMAT"):
        choose_format("yaml")
