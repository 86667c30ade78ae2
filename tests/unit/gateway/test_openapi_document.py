"""The gateway's OpenAPI document says what its validation enforces (issue 48, first step)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from pipeline.catalogue import load_catalogue
from pipeline.gateway.core import Gateway
from pipeline.gateway.routes import install
from pipeline.settings import ApiKey, GatewayTuning, PipelineSettings


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


def keyed_settings() -> PipelineSettings:
    key = ApiKey(name="admin", sha256="0" * 64, topics=["*"])
    return PipelineSettings(bootstrap_servers="127.0.0.1:9", gateway=GatewayTuning(api_keys=[key]))


def test_keys_are_declared_as_security_only_when_configured() -> None:
    open_document = document(PipelineSettings(bootstrap_servers="127.0.0.1:9"))
    assert "securitySchemes" not in open_document["components"]
    keyed = document(keyed_settings())
    assert keyed["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    for path, item in keyed["paths"].items():
        if path.startswith("/v1/topics/") and "events" in path:
            operation = item["post"]
            assert {"ApiKey": []} in operation["security"], path
            assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"]
            assert "403" in operation["responses"]


def test_every_batch_encoding_carries_the_same_array_of_events() -> None:
    paths = document(PipelineSettings(bootstrap_servers="127.0.0.1:9"))["paths"]
    for path, item in paths.items():
        if path.endswith("events:batch"):
            content = item["post"]["requestBody"]["content"]
            schemas = [content[kind]["schema"] for kind in content]
            assert len(content) == 3 and all(schema == schemas[0] for schema in schemas), path


def test_a_limited_decimal_is_published_as_the_text_it_is_checked_as() -> None:
    components = document(PipelineSettings(bootstrap_servers="127.0.0.1:9"))["components"]
    amount = components["schemas"]["Order"]["properties"]["amount"]
    assert amount["type"] == "string" and amount["pattern"].startswith("^")


def test_a_dead_letter_topic_in_the_catalogue_is_not_published_to() -> None:
    """A DLQ declared in the catalogue gets no route; its path is an unknown topic (404), not
    an answer that published nothing."""
    from pipeline.catalogue import Catalogue
    from pipeline.gateway.errors import GatewayError
    from topics import ORDERS

    settings = PipelineSettings(bootstrap_servers="127.0.0.1:9")
    gateway = Gateway(settings, Catalogue([ORDERS, ORDERS.dlq_spec()]))
    app = FastAPI()
    install(app, gateway)
    assert not [path for path in app.openapi()["paths"] if ".dlq" in path]
    with pytest.raises(GatewayError) as refused:
        gateway.spec_for(ORDERS.dlq_spec().name)
    assert refused.value.status == 404


def test_two_topics_whose_models_share_a_name_each_refer_to_their_own() -> None:
    from pydantic import BaseModel, create_model

    from pipeline.catalogue import Catalogue, TopicSpec

    first: type[BaseModel] = create_model("Event", sku=(str, ...))
    second: type[BaseModel] = create_model("Event", count=(int, ...))
    specs = [
        TopicSpec(name=name, event_model=model, key_field=key)
        for name, model, key in (("a", first, "sku"), ("b", second, "count"))
    ]
    app = FastAPI()
    install(app, Gateway(PipelineSettings(bootstrap_servers="127.0.0.1:9"), Catalogue(specs)))
    document_ = app.openapi()
    schemas = document_["components"]["schemas"]
    for topic, field in (("a", "sku"), ("b", "count")):
        body = document_["paths"][f"/v1/topics/{topic}/events"]["post"]["requestBody"]
        reference = body["content"]["application/json"]["schema"]["$ref"]
        assert list(schemas[reference.rsplit("/", 1)[1]]["properties"]) == [field], topic
