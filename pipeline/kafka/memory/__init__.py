"""An in-memory Kafka behind the port: topics, groups, commits, transactions, injected failures.

For tests of the runtime without a broker (thousands of cases in seconds)
and for users testing their processors (`pipeline.testing`). The contract
suite (`tests/contract/`) runs the same tests on it and on a real broker,
so the two cannot drift apart.
"""

from pipeline.kafka.memory.clients import MemoryClients
from pipeline.kafka.memory.cluster import MemoryBroker

__all__ = ["MemoryBroker", "MemoryClients"]
