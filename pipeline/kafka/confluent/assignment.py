"""What a confluent consumer owns, and librdkafka's rebalance callbacks that change it.

librdkafka calls back inside `consume()`, on the consumer thread; the
callbacks run the runtime's listener on the loop and wait for it (the
thread serves its queue meanwhile, so the listener's commits and offset
queries go through). The protocol decides the calls: eager assigns and
unassigns everything; cooperative-sticky and KIP-848's `consumer` protocol
hand over only the partitions that move. Records collected before a
revocation are dropped, never handed over after it: the next owner (maybe
this one) reads them again, from its commit or from a seek not yet reached.

Everything here runs on the consumer thread, except `replace` (the port's
manual `assign`, made before the thread applies it) and the reads of `owned`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Literal

from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as TheirPartition

from pipeline.kafka.confluent.fetched import FetchedAhead, PositionMirror
from pipeline.kafka.confluent.records import ours, theirs
from pipeline.kafka.confluent.thread import ConsumerThread
from pipeline.kafka.port import RebalanceListener, TopicPartition

log = logging.getLogger("pipeline.kafka.confluent")

Incremental = Literal["eager", "cooperative", "consumer"]


class Assignment:
    def __init__(
        self,
        protocol: Incremental,
        unsought: int | None,
        thread: ConsumerThread,
        ahead: FetchedAhead,
        mirror: PositionMirror,
    ) -> None:
        self.protocol = protocol
        self.unsought = unsought
        """Where a partition with no seek starts: the commit (None), or the reset offset for a
        reader without a group (it asks no coordinator: a fresh cluster has none for a while)."""
        self.owned: set[TopicPartition] = set()
        self.starts: dict[TopicPartition, int] = {}
        """Seeks not yet reached by a record: kept for a re-assignment of the partition."""
        self.paused: set[TopicPartition] = set()
        """What the runtime paused, to pause again after a restart."""
        self.revoked_in_fetch: set[TopicPartition] = set()
        """Revoked during the fetch in progress: what it collected for them is not theirs."""
        self.listener: RebalanceListener | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._revoke_heard = False
        self._thread = thread
        self._ahead = ahead
        self._mirror = mirror

    def replace(self, wanted: set[TopicPartition]) -> None:
        """A manual assignment: seeks and records kept for other partitions are forgotten."""
        self.owned = set(wanted)
        self.starts = {tp: offset for tp, offset in self.starts.items() if tp in wanted}
        self._ahead.keep_only(wanted)

    def positioned(
        self,
        partitions: Iterable[TopicPartition],
        going_on_at: Mapping[TopicPartition, int] | None = None,
    ) -> list[TheirPartition]:
        """A seek not yet reached, else where it goes on, else the commit (or reset)."""
        at = going_on_at or {}
        return [theirs(tp, self.starts.get(tp, at.get(tp, self.unsought))) for tp in partitions]

    # -- librdkafka's callbacks -------------------------------------------------------------------

    def on_assign(self, client: Consumer, partitions: list[TheirPartition]) -> None:
        assigned = {ours(tp) for tp in partitions}
        if self.protocol == "eager":
            if not self._revoke_heard:
                # librdkafka skips the revocation of a first join; the port's eager
                # listener hears one per rebalance, as on aiokafka.
                self._call_listener("on_revoked", set())
            self._revoke_heard = False
            client.assign(partitions)
            self.owned = assigned
        else:
            client.incremental_assign(partitions)
            self.owned |= assigned
        self._call_listener("on_assigned", assigned)

    def on_revoke(self, client: Consumer, partitions: list[TheirPartition]) -> None:
        revoked = {ours(tp) for tp in partitions}
        self._revoke_heard = True
        self.revoked_in_fetch |= revoked
        try:
            self._call_listener("on_revoked", revoked)
        finally:
            self.paused -= revoked  # a new assignment of them starts unpaused
            for tp in revoked:
                self.starts.pop(tp, None)
                self._ahead.drop(tp)
                self._mirror.forget(tp)
            if self.protocol == "eager":
                client.unassign()
                self.owned = set()
            else:
                client.incremental_unassign(partitions)
                self.owned -= revoked

    def on_lost(self, client: Consumer, partitions: list[TheirPartition]) -> None:
        log.warning(
            "lost partitions %s (this member was out of the group: its commits for them fail)",
            sorted(tp.partition for tp in partitions),
        )
        self.on_revoke(client, partitions)

    def _call_listener(self, name: str, partitions: set[TopicPartition]) -> None:
        if self.listener is None or self.loop is None:
            return
        callback = getattr(self.listener, name)
        try:
            self._thread.await_on_loop(self.loop, callback(partitions))
        except Exception:
            # librdkafka cannot take an exception from a callback; the assignment
            # change goes on and the runtime has logged its side.
            log.exception("the rebalance listener's %s failed", name)

    # -- starting partitions over -----------------------------------------------------------------

    def restart(self, client: Consumer, partitions: set[TopicPartition]) -> None:
        """Revoked and assigned again within one fetch: what was fetched for them may be of
        either assignment and was dropped; read them again from the commits (or seeks)."""
        self._mirror.unsettle(partitions)
        if self.protocol == "eager":
            self.assign_all_again(client, partitions)
        else:
            client.incremental_unassign([theirs(tp) for tp in partitions])
            client.incremental_assign(self.positioned(partitions))
            self._pause_again(client)

    def restart_at_seek(self, client: Consumer, tp: TopicPartition, offset: int) -> None:
        """A seek before the partition fetches (librdkafka refuses it): assign it there."""
        if self.protocol == "eager" or self.listener is None:
            self.assign_all_again(client, {tp})
        else:
            client.incremental_unassign([theirs(tp)])
            client.incremental_assign([theirs(tp, offset)])

    def assign_all_again(self, client: Consumer, restarted: set[TopicPartition]) -> None:
        """Eager assignment is all or nothing: the partitions not restarted go on from the
        position of the fetch (past records handed over or kept ahead), not from their
        commits, which would hand over again records already handed over."""
        going_on = [
            theirs(tp)
            for tp in self.owned - restarted
            if tp not in self.starts and self._mirror.settled(tp)
        ]
        positions = client.position(going_on) if going_on else []
        at = {ours(p): p.offset for p in positions if p.offset >= 0}
        client.assign(self.positioned(self.owned, going_on_at=at))
        self._pause_again(client)

    def _pause_again(self, client: Consumer) -> None:
        """An assignment starts unpaused; what the runtime holds back stays held back."""
        if still_paused := self.paused & self.owned:
            client.pause([theirs(tp) for tp in still_paused])
