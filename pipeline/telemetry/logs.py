"""Log lines as JSON objects, carrying where they happened: processor, replica, partition, event.

A log shipper (Loki, Elasticsearch, CloudWatch) indexes fields, not
sentences; a line that says which topic, partition, offset and event it is
about can be found from an alert or a DLQ record without grepping.

The fields come from three places, cheapest first: the process (processor
and replica, set once), the task (a partition worker binds its topic and
partition when it starts) and the record in hand (the lane's context, read
only when a line is actually written, so the hot path sets one context
variable per batch, not a dict per record).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from pipeline.errors import ConfigError

LogFormat = Literal["json", "text"]
LOG_FORMAT_ENV = "PIPELINE_LOG_FORMAT"
FieldSource = Callable[[], dict[str, object]]

_process_fields: dict[str, object] = {}
_task_fields: ContextVar[FieldSource | None] = ContextVar("pipeline_log_fields", default=None)


def set_process_fields(**fields: object) -> None:
    """Fields every line of this process carries (processor, replica)."""
    _process_fields.update({key: value for key, value in fields.items() if value is not None})


@contextmanager
def fields_from(source: FieldSource) -> Iterator[None]:
    """Lines logged by this task (and tasks it starts) meanwhile carry what `source` returns."""
    token = _task_fields.set(source)
    try:
        yield
    finally:
        _task_fields.reset(token)


def bind_fields(source: FieldSource) -> None:
    """The rest of this task's lines carry what `source` returns (until the task ends)."""
    _task_fields.set(source)


def current_fields() -> dict[str, object]:
    fields = dict(_process_fields)
    source = _task_fields.get()
    if source is not None:
        try:
            fields.update(source())
        except Exception as exc:  # noqa: BLE001 - a log line must not fail for its decoration
            fields["fields_error"] = repr(exc)
    return fields


def choose_format(requested: str | None = None) -> LogFormat:
    """Text for a person at a terminal, JSON for everything that collects logs."""
    wanted = (requested or os.environ.get(LOG_FORMAT_ENV) or "auto").lower()
    if wanted in ("json", "text"):
        return wanted  # type: ignore[return-value]
    if wanted != "auto":
        raise ConfigError(
            f"log format {wanted!r} is not json, text or auto: fix --log-format or {LOG_FORMAT_ENV}"
        )
    return "text" if sys.stderr.isatty() else "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound fields, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(current_fields())
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain line, with the record's place in brackets when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = current_fields()
        place = _place(fields)
        if not place:
            return text
        head, newline, rest = text.partition("\n")
        return f"{head} [{place}]{newline}{rest}"


def _place(fields: dict[str, object]) -> str:
    topic = fields.get("topic")
    if topic is None:
        return ""
    place = f"{topic}"
    if "partition" in fields:
        place += f"-{fields['partition']}"
    if "offset" in fields:
        place += f"@{fields['offset']}"
    if "event_id" in fields:
        place += f" event {fields['event_id']}"
    return place


def _iso_utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"
