"""Why aiokafka could not connect, in words a user can act on.

aiokafka's bootstrap raises one error for every cause, "Unable to bootstrap
from [...]", and logs the real one (refused credentials, a certificate
from an unknown CA, nothing listening) a line earlier. A filter on its
logger keeps that last cause, and a client's start turns the generic error
into one PipelineError naming the cluster, the cause and the setting to
check; never the password.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaConnectionError

from pipeline.errors import PipelineError
from pipeline.settings import PipelineSettings

CLIENT_LOGGER = "aiokafka"


def _final(cause: BaseException) -> bool:
    """A cause no retry mends: wrong credentials, a certificate no trusted CA signed."""
    text = str(cause)
    return "Authentication failed" in text or "CERTIFICATE_VERIFY_FAILED" in text


class _LastCause(logging.Filter):
    """Keeps the error of aiokafka's latest failed bootstrap connection."""

    def __init__(self) -> None:
        super().__init__()
        self.cause: BaseException | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Unable connect to") and isinstance(record.args, tuple):
            found = [arg for arg in record.args if isinstance(arg, BaseException)]
            if found:
                self.cause = found[-1]
                # Refused credentials or an unknown CA: the error raised says so, once.
                return not _final(self.cause)
        return True


_last = _LastCause()


def _install() -> None:
    logger = logging.getLogger(CLIENT_LOGGER)
    if _last not in logger.filters:
        logger.addFilter(_last)


class ClusterConnectionError(PipelineError):
    """The cluster could not be reached or refused this client; the message says which."""


def explained(start: Callable[[], Awaitable[Any]], settings: PipelineSettings) -> Callable[[], Any]:
    """`start`, raising ClusterConnectionError with the cause where aiokafka gives none."""
    _install()

    async def start_explained() -> Any:
        _last.cause = None
        try:
            return await start()
        except KafkaConnectionError as exc:
            raise explain(_last.cause, settings) from exc

    return start_explained


def explain(cause: BaseException | None, settings: PipelineSettings) -> ClusterConnectionError:
    where = settings.bootstrap_servers
    text = f"{type(cause).__name__}: {cause}" if cause is not None else "no broker answered"
    if "SaslAuthenticationFailed" in text or "Authentication failed" in text:
        return ClusterConnectionError(
            f"the cluster at {where} refused the credentials of user "
            f"{settings.sasl_username!r} ({settings.sasl_mechanism}): check "
            "PIPELINE_SASL_USERNAME and PIPELINE_SASL_PASSWORD (the password is not shown)"
        )
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        authority = settings.ssl_cafile or "the system's certificate store"
        return ClusterConnectionError(
            f"the TLS certificate of the cluster at {where} is not signed by a CA this client "
            f"trusts ({authority}): {cause}. Set PIPELINE_SSL_CAFILE to the cluster's CA "
            "certificate"
        )
    if isinstance(cause, ssl.SSLError) or "SSL" in text:
        return ClusterConnectionError(
            f"the TLS handshake with the cluster at {where} failed: {text}. Is "
            f"PIPELINE_SECURITY_PROTOCOL ({settings.security_protocol}) the listener's, and does "
            "the broker want a client certificate (PIPELINE_SSL_CERTFILE, PIPELINE_SSL_KEYFILE)?"
        )
    return ClusterConnectionError(
        f"cannot connect to the cluster at {where} ({text}). Is it running (`pipeline infra "
        f"status`), and is PIPELINE_SECURITY_PROTOCOL ({settings.security_protocol}) the "
        "listener's?"
    )
