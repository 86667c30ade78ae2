"""What a processor that keeps state may declare, refused at declaration with the reason.

Each refusal is a way to lose an update or a copy that a running worker
would only show much later, as a wrong count.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError
from pipeline.stores.store_spec import Store


def check_state_declaration(
    processor: str, stores: tuple[Store[Any], ...], lanes: int, run_in: str, standbys: int
) -> None:
    if standbys < 0:
        raise ConfigError(f"processor {processor!r}: standbys must be 0 or more, not {standbys}")
    if not stores:
        if standbys:
            raise ConfigError(
                f"processor {processor!r}: standbys={standbys} but it keeps no state (no "
                "stores or windows): a standby is a warm copy of a partition's stores"
            )
        return
    names = [store.name for store in stores]
    if len(set(names)) != len(names):
        raise ConfigError(f"processor {processor!r}: two stores or windows share a name: {names}")
    if lanes != 1:
        raise ConfigError(
            f"processor {processor!r} keeps state and lanes={lanes}: lanes run "
            "records of different keys at once, and two of them writing one store key "
            "would lose an update; use lanes=1 (state is per partition, so add "
            "partitions for more parallelism)"
        )
    if run_in != "loop":
        raise ConfigError(
            f"processor {processor!r} keeps state and run_in={run_in!r}: a "
            "thread or process handler gets no context, so it cannot reach a store; "
            "keep the state in a loop handler and hand only the heavy work to a pool"
        )
