"""`pipeline gateway`: the HTTP ingest gateway, as several processes behind one port."""

from __future__ import annotations

import typer

from pipeline.cli.common import BootstrapOption, console


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

    settings = settings_for_cli(bootstrap)
    import os

    # Worker processes build their settings from the environment: pass on what the CLI found.
    os.environ["PIPELINE_BOOTSTRAP_SERVERS"] = settings.bootstrap_servers
    console.print(f"gateway on http://{host}:{port} ({workers} process(es)); docs at /docs")
    uvicorn.run(
        "pipeline.gateway.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        timeout_graceful_shutdown=int(drain),
        timeout_keep_alive=int(settings.gateway.keep_alive_s),
        log_level="warning",
        # No client address is logged or used: rewriting it from X-Forwarded-For
        # on every request is work for nothing.
        proxy_headers=False,
    )
