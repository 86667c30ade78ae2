"""SASL and TLS in the rendered manifests: credentials from Secrets, never in the YAML.

Every Deployment that talks to Kafka gets the security protocol and
mechanism as plain values, the user name and password from the Secret
`<name>-kafka` (keys `username`, `password`), and with TLS the CA (and for
mutual TLS the client certificate and key) mounted read-only from the
Secret `<name>-kafka-tls` (keys `ca.crt`, `tls.crt`, `tls.key`). KEDA's
Kafka scaler reads the same Secrets through a TriggerAuthentication (it
also wants the modes as Secret keys: `sasl`, `tls`).
"""

from __future__ import annotations

from typing import Any

from pipeline.settings import PipelineSettings

TLS_MOUNT = "/etc/pipeline/kafka-tls"
KEDA_SASL_MODES = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
}
DEFAULT_MECHANISM = "SCRAM-SHA-512"


def secured(settings: PipelineSettings) -> bool:
    return settings.security_protocol != "PLAINTEXT"


def secure_documents(docs: list[dict[str, Any]], settings: PipelineSettings) -> None:
    """Add the Kafka credentials to each Deployment, scaler and trigger authentication."""
    if not secured(settings):
        return
    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] == "Deployment":
            _secure_pods(doc["spec"]["template"]["spec"], name, settings)
        elif doc["kind"] == "ScaledObject":
            for trigger in doc["spec"]["triggers"]:
                if trigger["type"] == "kafka":
                    trigger["authenticationRef"] = {"name": f"{name}-kafka"}
        elif doc["kind"] == "TriggerAuthentication":
            doc["spec"]["secretTargetRef"] = _keda_references(name, settings)


def _secure_pods(pod: dict[str, Any], name: str, settings: PipelineSettings) -> None:
    protocol = settings.security_protocol
    credentials, tls = f"{name}-kafka", f"{name}-kafka-tls"
    env: list[dict[str, Any]] = [{"name": "PIPELINE_SECURITY_PROTOCOL", "value": protocol}]
    if protocol.startswith("SASL"):
        env += [
            {
                "name": "PIPELINE_SASL_MECHANISM",
                "value": settings.sasl_mechanism or DEFAULT_MECHANISM,
            },
            _from_secret("PIPELINE_SASL_USERNAME", credentials, "username"),
            _from_secret("PIPELINE_SASL_PASSWORD", credentials, "password"),
        ]
    if protocol in ("SSL", "SASL_SSL"):
        env.append({"name": "PIPELINE_SSL_CAFILE", "value": f"{TLS_MOUNT}/ca.crt"})
        if protocol == "SSL":  # mutual TLS: the certificate is the principal
            env += [
                {"name": "PIPELINE_SSL_CERTFILE", "value": f"{TLS_MOUNT}/tls.crt"},
                {"name": "PIPELINE_SSL_KEYFILE", "value": f"{TLS_MOUNT}/tls.key"},
            ]
        pod.setdefault("volumes", []).append(
            {"name": "kafka-tls", "secret": {"secretName": tls, "defaultMode": 0o440}}
        )
    for container in pod["containers"]:
        container.setdefault("env", []).extend(env)
        if protocol in ("SSL", "SASL_SSL"):
            container.setdefault("volumeMounts", []).append(
                {"name": "kafka-tls", "mountPath": TLS_MOUNT, "readOnly": True}
            )


def _from_secret(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _keda_references(auth_name: str, settings: PipelineSettings) -> list[dict[str, str]]:
    """What KEDA's Kafka scaler reads: sasl, username, password, tls, ca (cert, key)."""
    credentials = auth_name  # the TriggerAuthentication is named after the credentials Secret
    tls = f"{auth_name}-tls"
    protocol = settings.security_protocol
    references = []
    if protocol.startswith("SASL"):
        references += [
            {"parameter": "sasl", "name": credentials, "key": "sasl"},
            {"parameter": "username", "name": credentials, "key": "username"},
            {"parameter": "password", "name": credentials, "key": "password"},
        ]
    if protocol in ("SSL", "SASL_SSL"):
        references += [
            {"parameter": "tls", "name": credentials, "key": "tls"},
            {"parameter": "ca", "name": tls, "key": "ca.crt"},
        ]
        if protocol == "SSL":
            references += [
                {"parameter": "cert", "name": tls, "key": "tls.crt"},
                {"parameter": "key", "name": tls, "key": "tls.key"},
            ]
    return references
