"""A chaos run's topics read back into what the verdict compares."""

from __future__ import annotations

from pipeline.chaos.checking import OUTPUT, Checked
from pipeline.chaos.verdict import InputRecord, OutputRecord
from pipeline.kafka.connect import connect
from pipeline.reading.reader import read_all
from pipeline.settings import PipelineSettings
from pipeline.wire import dlq_headers as dlq
from pipeline.wire.codec import decode_value, header_value


async def read_run(
    settings: PipelineSettings,
    input_topic: str,
    output_topic: str,
    dlq_topic: str,
    committed_only: bool = False,
) -> tuple[list[InputRecord], list[OutputRecord], list[tuple[int, int]]]:
    """`committed_only`: outputs and dead letters as a read_committed consumer sees them
    (exactly-once runs: an aborted transaction's records are not outputs)."""
    clients = connect(settings)
    inputs = [
        InputRecord(r.partition, r.offset, (r.key or b"").decode(errors="replace"))
        for r in await read_all(clients, input_topic, timeout_s=180)
    ]
    spec = OUTPUT.with_name(output_topic)
    outputs = []
    for record in await read_all(clients, output_topic, 180, committed_only):
        checked = decode_value(spec, record.value)
        assert isinstance(checked, Checked)
        outputs.append(
            OutputRecord(
                record.partition,
                record.offset,
                checked.key,
                checked.source_partition,
                checked.source_offset,
                record.timestamp,
                checked.replica,
                checked.count,
            )
        )
    dead_letters = [
        (
            int(header_value(r.headers, dlq.SOURCE_PARTITION) or -1),
            int(header_value(r.headers, dlq.SOURCE_OFFSET) or -1),
        )
        for r in await read_all(clients, dlq_topic, 180, committed_only)
    ]
    return inputs, outputs, dead_letters
