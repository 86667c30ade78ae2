"""API keys: sent as `X-API-Key` (or `Authorization: Bearer`), stored hashed, scoped to topics."""

from __future__ import annotations

import hashlib
import hmac

from pipeline.gateway.errors import GatewayError
from pipeline.settings import ApiKey


def hash_key(key: str) -> str:
    """What goes into configuration for a key: `pipeline gateway --hash-key KEY` prints it."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @property
    def open(self) -> bool:
        return not self.keys

    def authorise(self, presented: str | None, topic: str) -> str:
        """The key's name; 401 for a missing or unknown key, 403 for a topic it may not use."""
        if self.open:
            return "anonymous"
        if not presented:
            raise GatewayError(
                401,
                "missing_api_key",
                "send your API key in the X-API-Key header",
                headers={"WWW-Authenticate": "ApiKey"},
            )
        digest = hash_key(presented)
        for key in self.keys:
            if hmac.compare_digest(digest, key.sha256):
                if "*" in key.topics or topic in key.topics:
                    return key.name
                raise GatewayError(
                    403,
                    "topic_not_allowed",
                    f"key {key.name!r} may publish to {', '.join(key.topics)}, not {topic!r}",
                )
        raise GatewayError(
            401,
            "unknown_api_key",
            "the API key is not known",
            headers={"WWW-Authenticate": "ApiKey"},
        )


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    if x_api_key:
        return x_api_key
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None
