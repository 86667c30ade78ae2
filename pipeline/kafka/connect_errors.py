"""A client that cannot connect, explained: refused credentials, an unknown CA, nothing there.

Both clients hide the cause of a failed bootstrap behind a generic error
(aiokafka's "Unable to bootstrap", librdkafka's "Failed to get metadata")
and report it separately, in a log line or an error callback. The adapters
keep that last cause (`remember`) and raise `explain`'s one message,
naming the cluster, the cause and the setting to check; never the password.
"""

from __future__ import annotations

import ssl

from pipeline.errors import PipelineError
from pipeline.settings import PipelineSettings


class ClusterConnectionError(PipelineError):
    """The cluster could not be reached or refused this client; the message says which."""


def final(cause: str) -> bool:
    """A cause no retry mends: wrong credentials, a certificate no trusted CA signed."""
    lowered = cause.lower()
    return "authentication failed" in lowered or "certificate verify failed" in lowered


def explain(
    cause: BaseException | str | None, settings: PipelineSettings
) -> ClusterConnectionError:
    where = settings.bootstrap_servers
    if isinstance(cause, BaseException):
        text = f"{type(cause).__name__}: {cause}"
    else:
        text = cause or "no broker answered"
    lowered = text.lower()
    if "authentication failed" in lowered or "saslauthenticationfailed" in lowered:
        return ClusterConnectionError(
            f"the cluster at {where} refused the credentials of user "
            f"{settings.sasl_username!r} ({settings.sasl_mechanism}): check "
            "PIPELINE_SASL_USERNAME and PIPELINE_SASL_PASSWORD (the password is not shown)"
        )
    if isinstance(cause, ssl.SSLCertVerificationError) or "certificate verify failed" in lowered:
        authority = settings.ssl_cafile or "the system's certificate store"
        return ClusterConnectionError(
            f"the TLS certificate of the cluster at {where} is not signed by a CA this client "
            f"trusts ({authority}): {text}. Set PIPELINE_SSL_CAFILE to the cluster's CA "
            "certificate"
        )
    if isinstance(cause, ssl.SSLError) or "ssl" in lowered:
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
