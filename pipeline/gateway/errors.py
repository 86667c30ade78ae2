"""Errors the gateway answers with: a status, a reason code, and what exactly was wrong."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class GatewayError(Exception):
    """Becomes a JSON error response; nothing of the request has been published."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        items: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.items = items
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"status": self.status, "reason": self.reason}
        error["message"] = self.message
        if self.items is not None:
            error["items"] = self.items
        return {"error": error}


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Each problem as the field path (`lines.0.quantity`) and the reason."""
    return [
        {
            "field": ".".join(str(part) for part in problem["loc"]) or "(body)",
            "reason": problem["msg"],
        }
        for problem in exc.errors(include_url=False)
    ]
