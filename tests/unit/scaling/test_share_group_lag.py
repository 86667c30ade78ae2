"""A share group's lag (queue mode): from the brokers' backlog, and never capped by partitions."""

from __future__ import annotations

from pathlib import Path

from pipeline.kafka.memory import MemoryClients
from pipeline.kafka.port import ShareBacklog
from pipeline.processor import Context, Processor
from pipeline.scaling.lag import LagMonitor, measure
from pipeline.scaling.policy import ScalingPolicy
from pipeline.scaling.supervisor import UNCAPPED, Supervisor
from pipeline.settings import PipelineSettings
from pipeline.testing import TestPipeline
from tests.unit.runtime.support import OUTPUT, SOURCE, Done, Step

ENDS = {0: 100, 1: 50, 2: 0}
STARTS = {0: 0, 1: 0, 2: 0}


def test_the_backlog_is_the_lag_and_the_start_offset_stands_for_the_commit() -> None:
    backlog = {0: ShareBacklog(60, 30), 1: ShareBacklog(-1, -1)}
    sample, _ = measure("g", "t", 1.0, ENDS, STARTS, {0: 60}, None, backlog=backlog)
    by_partition = {p.partition: p for p in sample.partitions}
    assert sample.kind == "share"
    assert by_partition[0].lag == 30  # not 40: acknowledged records past the start are done
    assert by_partition[0].committed == 60
    assert by_partition[1].lag == 50  # unknown before a first outcome: all of it is backlog
    assert by_partition[2].lag == 0
    consumer, _ = measure("g", "t", 1.0, ENDS, STARTS, {0: 60}, None)
    assert consumer.kind == "consumer" and consumer.lag == 40 + 50


def test_the_rate_it_drains_at_is_the_consume_rate() -> None:
    _, reading = measure("g", "t", 0.0, ENDS, STARTS, {}, None, backlog={0: ShareBacklog(0, 100)})
    sample, _ = measure("g", "t", 2.0, ENDS, STARTS, {}, reading, backlog={0: ShareBacklog(10, 80)})
    assert sample.partitions[0].consume_rate == 10.0


def test_a_share_group_is_not_capped_at_its_partition_count(tmp_path: Path) -> None:
    made = Supervisor(
        settings=PipelineSettings(bootstrap_servers="127.0.0.1:9"),
        processor="p",
        group="g",
        topic="t",
        policy=ScalingPolicy(max_replicas=12),
        env={},
        log_dir=tmp_path,
        share=True,
    )
    sample, _ = measure("g", "t", 1.0, ENDS, STARTS, {}, None, backlog={0: ShareBacklog(0, 100)})
    observed = made.observe(sample, replicas=3)
    assert observed.partitions == UNCAPPED == observed.partitions_with_lag
    stream, _ = measure("g", "t", 1.0, ENDS, STARTS, {}, None)
    assert made.observe(stream, replicas=3).partitions == 3


async def test_the_monitor_reads_a_queue_processors_backlog_on_the_memory_broker() -> None:
    async def handle(step: Step, ctx: Context) -> Done:
        return Done(key=step.key, n=step.n)

    processor = Processor("mail", SOURCE, handle, outputs=(OUTPUT,), delivery="queue")
    async with TestPipeline(processor) as run:
        await run.publish(SOURCE, [Step(key=f"k{n}", n=n) for n in range(30)])
        await run.processed()
        clients = MemoryClients(run.broker)
        async with LagMonitor(clients, processor.group_id, SOURCE.name, share=True) as monitor:
            sample = await monitor.sample()
            assert await monitor.members() == 1  # the replica's one slot, from the share group
        assert sample.kind == "share" and sample.lag == 0
        async with LagMonitor(clients, processor.group_id, SOURCE.name) as monitor:
            assert (await monitor.sample()).kind == "share"  # told by its share state
