"""The gateway's OpenAPI document says what its validation enforces (issue 48, first step)."""

from __future__ import annotations

from fastapi import FastAPI

from pipeline.catalogue import load_catalogue
from pipeline.gateway.core import Gateway
from pipeline.gateway.routes import install
from pipeline.settings import GatewayTuning, PipelineSettings


def test_a_batch_route_declares_the_sizes_it_takes() -> None:
    """An empty batch is refused (400) and one past the limit too (413): a client generated
    from the document must not send either."""
    settings = PipelineSettings(
        bootstrap_servers="127.0.0.1:9", gateway=GatewayTuning(max_batch_events=250)
    )
    app = FastAPI()
    install(app, Gateway(settings, load_catalogue(settings.catalogue_module)))
    document = app.openapi()
    batches = [path for path in document["paths"] if path.endswith("events:batch")]
    assert batches
    for path in batches:
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["minItems"] == 1, path
        assert body["schema"]["maxItems"] == 250, path
