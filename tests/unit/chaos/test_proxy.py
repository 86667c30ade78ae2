"""The chaos proxy delays, holds and then forwards a TCP stream, in order, on loopback."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.chaos.proxy import FaultyNetwork
from pipeline.dev.processes import free_ports


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def network() -> Iterator[tuple[FaultyNetwork, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    listen = free_ports(1)[0]
    network = FaultyNetwork([(listen, server.server_address[1])])
    network.start()
    try:
        yield network, listen
    finally:
        network.stop()
        server.shutdown()
        server.server_close()


def round_trip(connection: socket.socket, payload: bytes) -> float:
    started = time.monotonic()
    connection.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += connection.recv(1024)
    assert received == payload
    return time.monotonic() - started


def test_latency_delays_each_direction_and_a_blackhole_holds_until_healed(
    network: tuple[FaultyNetwork, int],
) -> None:
    proxy, port = network
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        assert round_trip(connection, b"direct") < 0.15
        proxy.set_latency(0.1)
        assert round_trip(connection, b"slow") >= 0.2  # 0.1 s there, 0.1 s back
        proxy.set_latency(0.0)
        proxy.blackhole()
        time.sleep(0.05)
        connection.sendall(b"held")
        connection.settimeout(0.5)
        with pytest.raises(TimeoutError):
            connection.recv(1024)
        proxy.heal()
        connection.settimeout(5)
        assert connection.recv(1024) == b"held"
        assert round_trip(connection, b"after") < 0.15
