"""The gateway's OpenAPI document says what its validation enforces (issue 48, first step)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from pipeline.catalogue import load_catalogue
from pipeline.gateway.core import Gateway
from pipeline.gateway.routes import install
from pipeline.settings import GatewayTuning, PipelineSettings


def document(settings: PipelineSettings) -> dict[str, Any]:
    app = FastAPI()
    install(app, Gateway(settings, load_catalogue(settings.catalogue_module)))
    return app.openapi()


def test_a_batch_route_declares_the_sizes_it_takes() -> None:
    """An empty batch is refused (400) and one past the limit too (413): a client generated
    from the document must not send either."""
    settings = PipelineSettings(
        bootstrap_servers="127.0.0.1:9", gateway=GatewayTuning(max_batch_events=250)
    )
    document_ = document(settings)
    batches = [path for path in document_["paths"] if path.endswith("events:batch")]
    assert batches
    for path in batches:
        body = document_["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["minItems"] == 1, path
        assert body["schema"]["maxItems"] == 250, path


def test_every_publish_route_says_a_503_comes_with_retry_after() -> None:
    paths = document(PipelineSettings(bootstrap_servers="127.0.0.1:9"))["paths"]
    publishing = [path for path in paths if path.startswith("/v1/topics/") and "events" in path]
    assert publishing
    for path in publishing:
        header = paths[path]["post"]["responses"]["503"]["headers"]["Retry-After"]
        assert header["required"] and header["schema"] == {"type": "integer", "minimum": 1}
