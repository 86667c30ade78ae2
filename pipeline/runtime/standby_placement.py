"""Which partitions a replica keeps warm copies of, from the group's own description.

Every replica computes the same answer from the same description, with
no coordination of its own: members in the order of their client ids
(each replica names itself `<client id>-<replica id>`), each partition's
owner read from the assignment. A partition's copies go to the members
after its owner in that order, rotated by the partition's rank among its
owner's partitions: when a member dies, the assignor spreads its
partitions over the survivors, so its copies are spread the same way
rather than all on its neighbour. A copy is never on the partition's
owner, and a group of one keeps none.

The group's assignor, not this, decides where a partition goes on a
failover: with two replicas it always lands on its copy; with more, on a
copy when the assignor happens to choose that member, and with
`standbys` at replicas - 1 every survivor has one.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.kafka.port import GroupMember


def standby_partitions(
    members: Sequence[GroupMember], me: str, topic: str, copies: int
) -> frozenset[int]:
    """The partitions of `topic` that the member whose client id is `me` keeps copies of."""
    order = sorted({member.client_id for member in members})
    if me not in order or copies < 1 or len(order) < 2:
        return frozenset()
    mine = order.index(me)
    others = len(order) - 1
    kept: set[int] = set()
    for member in members:
        owner = order.index(member.client_id)
        owned = sorted(tp.partition for tp in member.assignment if tp.topic == topic)
        for rank, partition in enumerate(owned):
            for copy in range(min(copies, others)):
                if (owner + 1 + (rank + copy) % others) % len(order) == mine:
                    kept.add(partition)
    return frozenset(kept)
