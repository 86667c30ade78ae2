"""`pipeline scale`'s probe kills a worker whose /healthz stops answering, and only that one.

Real processes serving HTTP; a frozen loop is made the honest way: a
process stopped with SIGSTOP still accepts connections (the kernel queues
them) and answers nothing, as a worker whose event loop stands still.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

from pipeline.dev.processes import free_ports
from pipeline.scaling.health_probe import HealthProbe

SERVER = textwrap.dedent(
    """
    import http.server, sys

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 200 if sys.argv[2] == "live" else 503
            self.send_response(code)
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
    """
)


@dataclass
class Served:
    replica_id: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            self.process.send_signal(sig)


def serve(replica_id: str, state: str = "live") -> Served:
    port = free_ports(1)[0]
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port), state])
    return Served(replica_id, port, process)


async def answering(served: Served) -> None:
    for _ in range(100):
        if await HealthProbe(dict).ask_status(served) is not None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{served.replica_id} never answered")


async def test_a_frozen_worker_is_killed_after_three_misses_and_a_live_one_is_left() -> None:
    live, frozen, starting = serve("live"), serve("frozen"), serve("starting")
    workers = {s.replica_id: s for s in (live, frozen, starting)}
    try:
        await answering(live)
        await answering(frozen)
        starting.process.send_signal(signal.SIGSTOP)  # never answered: within its start-up
        probe = HealthProbe(lambda: workers, period_s=0.2, timeout_s=0.3, startup_s=60)
        stop = asyncio.Event()
        running = asyncio.ensure_future(probe.run(stop))
        await asyncio.sleep(0.5)
        assert probe.killed == 0
        frozen.process.send_signal(signal.SIGSTOP)
        assert await asyncio.to_thread(frozen.process.wait, 10) == -signal.SIGKILL
        await asyncio.sleep(1.0)
        stop.set()
        await running
        assert probe.killed == 1
        assert live.running and starting.running
    finally:
        for served in workers.values():
            served.process.kill()
            served.process.wait()


async def test_not_live_answers_count_as_misses_once_the_worker_answered() -> None:
    stalled = serve("stalled", state="stalled")
    try:
        await answering(stalled)
        probe = HealthProbe(lambda: {"stalled": stalled}, period_s=0.1, timeout_s=0.5)
        stop = asyncio.Event()
        running = asyncio.ensure_future(probe.run(stop))
        assert await asyncio.to_thread(stalled.process.wait, 10) == -signal.SIGKILL
        stop.set()
        await running
    finally:
        stalled.process.kill()
        stalled.process.wait()
