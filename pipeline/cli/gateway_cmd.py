"""`pipeline gateway`: the HTTP ingest gateway, as several processes behind one port."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import typer

from pipeline.cli.common import BootstrapOption, LogFormatOption, console


def gateway(
    port: int = typer.Option(8080, "--port", help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="0.0.0.0 to listen on every address."),
    workers: int = typer.Option(1, "--workers", help="Processes sharing the port."),
    drain: float = typer.Option(
        20.0, "--drain", help="On SIGTERM: seconds to finish requests in flight."
    ),
    hash_key: str = typer.Option(
        None, "--hash-key", help="Print the SHA-256 to configure for this API key, and exit."
    ),
    bootstrap: str = BootstrapOption,
    log_format: str | None = LogFormatOption,
) -> None:
    """Serve POST /v1/topics/{topic}/events and /events:batch, /v1/topics, /docs.

    Configured like everything else (PIPELINE_BOOTSTRAP_SERVERS,
    PIPELINE_GATEWAY__API_KEYS='[{"name":"shop","sha256":"…","topics":["orders"]}]').
    SIGTERM stops accepting, finishes requests in flight and flushes the producer.

    Example: pipeline gateway --port 8080 --workers 2
    """
    if hash_key is not None:
        from pipeline.gateway.auth import hash_key as digest

        typer.echo(digest(hash_key))
        return
    import uvicorn

    from pipeline.cli.common import settings_for_cli
    from pipeline.telemetry.logs import LOG_FORMAT_ENV, choose_format

    settings = settings_for_cli(bootstrap)
    if log_format is not None:
        # The uvicorn workers set up their own logging, from the environment.
        os.environ[LOG_FORMAT_ENV] = choose_format(log_format)
    # Worker processes build their settings from the environment: pass on what the CLI found.
    os.environ["PIPELINE_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    console.print(f"gateway on http://{host}:{port} ({workers} process(es)); docs at /docs")
    with _shared_metrics(workers):
        _serve(uvicorn, host, port, workers, drain, settings.gateway.keep_alive_s)


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Several processes: the client's multi-process mode, so one scrape of /metrics sums them.

    The folder is new and empty for each run (files left by an earlier run
    would be summed in) and removed afterwards.
    """
    if workers <= 1:
        yield
        return
    from pipeline.metrics import MULTIPROCESS_ENV

    with tempfile.TemporaryDirectory(prefix="pipeline-gateway-metrics-") as folder:
        os.environ[MULTIPROCESS_ENV] = folder
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_ENV]


def _serve(
    uvicorn: Any, host: str, port: int, workers: int, drain: float, keep_alive: float
) -> None:
    uvicorn.run(
        "pipeline.gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=int(drain),
        timeout_keep_alive=int(keep_alive),
        log_level="warning",
        # No client address is logged or used: rewriting it from X-Forwarded-For
        # on every request is work for nothing.
        proxy_headers=False,
    )
