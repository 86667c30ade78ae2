"""JSON topics against software nobody here wrote: Kafka's own console producer and consumer.

Kafka's `ConsoleProducer` (from the Kafka jars the project resolves) writes
plain JSON lines with no headers, as another team's script would; a real
worker process reads them. Kafka's `ConsoleConsumer` then reads the
worker's outputs, and each line it prints must be a JSON object any JSON
library parses. Bad lines go to the DLQ with their reason, and the worker
lives on.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

from pipeline.dev.kafka_jars import java_executable, resolve_classpath
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import cache_dir
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import header_value
from tests.integration.harness import run_until_settled
from tests.integration.processors import JSON_OUTPUT, JSON_SOURCE
from tests.support import read_all

EVENTS = 300
KEYS = 7


def kafka_tool(main_class: str, *args: str, stdin: str = "", timeout_s: float = 120) -> str:
    result = subprocess.run(
        [java_executable(), "-cp", resolve_classpath(cache_dir()), main_class, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, f"{main_class} exited {result.returncode}: {result.stderr}"
    return result.stdout


def test_json_written_by_kafkas_console_producer_is_processed_and_read_back_by_its_consumer(
    settings: PipelineSettings, unique: str, tmp_path: Path
) -> None:
    source = JSON_SOURCE.with_name(unique + JSON_SOURCE.name)
    output = JSON_OUTPUT.with_name(unique + JSON_OUTPUT.name)
    clients = connect(settings)
    run_sync(ensure_topics(clients, [source, source.dlq_spec(), output]))

    lines = [f'k{i % KEYS}|{{"key": "k{i % KEYS}", "seq": {i}}}' for i in range(EVENTS)]
    lines += ["k1|this is not JSON", "k2|[1, 2, 3]"]
    kafka_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        *("--bootstrap-server", settings.bootstrap_servers, "--topic", source.name),
        *("--reader-property", "parse.key=true", "--reader-property", "key.separator=|"),
        stdin="\n".join(lines) + "\n",
    )

    run_until_settled(
        settings,
        "json_passthrough",
        (output.name, source.dlq_name),
        (EVENTS, 2),
        tmp_path,
        unique,
    )

    printed = kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        *("--bootstrap-server", settings.bootstrap_servers, "--topic", output.name),
        *("--from-beginning", "--max-messages", str(EVENTS), "--timeout-ms", "60000"),
        *("--formatter-property", "print.key=true", "--formatter-property", "key.separator=|"),
    )
    seqs_by_key: dict[str, list[int]] = defaultdict(list)
    for line in printed.splitlines():
        key, _, value = line.partition("|")
        body = json.loads(value)
        assert body["key"] == key, line
        seqs_by_key[key].append(body["seq"])
    assert sorted(s for seqs in seqs_by_key.values() for s in seqs) == list(range(EVENTS))
    for key, seqs in seqs_by_key.items():
        assert seqs == sorted(seqs), f"{key}'s events out of order: {seqs}"

    dead = run_sync(read_all(clients, source.dlq_name))
    reasons = {r.value: header_value(r.headers, "dlq-error-message") or "" for r in dead}
    assert reasons.keys() == {b"[1, 2, 3]", b"this is not JSON"}, "the DLQ keeps the bytes"
    assert "value is JSON an array, expected an object of fields" in reasons[b"[1, 2, 3]"]
    assert "value is not JSON" in reasons[b"this is not JSON"]
    assert all(source.name in reason and "offset" in reason for reason in reasons.values())
