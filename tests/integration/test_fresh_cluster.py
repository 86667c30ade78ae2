"""The group commands survive a freshly started cluster on the confluent client."""

from __future__ import annotations

import pytest

from tests.integration.fresh_cluster import one_round

pytestmark = pytest.mark.integration


@pytest.mark.full_size  # a cluster of its own, 46 s: `make test-full`, or the module as a command
def test_every_group_command_survives_a_fresh_cluster_on_confluent() -> None:
    outcomes, _ = one_round()
    report = {o.command: o.returncode for o in outcomes}
    assert not [o for o in outcomes if o.crashed], report
    assert all(o.answered for o in outcomes), "\n".join(
        f"{o.command} ({o.returncode}):\n{o.log_tail}" for o in outcomes if not o.answered
    )
