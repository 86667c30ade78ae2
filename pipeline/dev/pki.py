"""A local certificate authority for the secured development cluster.

One CA; a server certificate for the brokers (valid for 127.0.0.1 and
localhost); client certificates whose common name is the principal for
mutual TLS. Keys are PKCS#8 PEM without a passphrase, readable by their
owner only: this is a laptop's or a CI box's cluster, whose whole state
directory is private, not a production PKI.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path
    bundle: Path
    """Key, certificate and CA in one PEM file: what Kafka's PEM keystore reads."""


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pipeline local cluster"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(b"")
    os.chmod(path, 0o600)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class LocalCA:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.certificate_path = folder / "ca.crt"
        self._key_path = folder / "ca.key"

    def create(self) -> LocalCA:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("pipeline local CA"))
            .issuer_name(_name("pipeline local CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_private(self._key_path, _key_pem(key))
        self.certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return self

    def issue(self, common_name: str, server: bool) -> Issued:
        """A certificate for a broker (server: SANs 127.0.0.1, localhost) or a client principal."""
        ca_key = serialization.load_pem_private_key(self._key_path.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_certificate = x509.load_pem_x509_certificate(self.certificate_path.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                    if server
                    else [ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        certificate = builder.sign(ca_key, hashes.SHA256())
        certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
        issued = Issued(
            self.folder / f"{common_name}.crt",
            self.folder / f"{common_name}.key",
            self.folder / f"{common_name}.pem",
        )
        issued.certificate.write_bytes(certificate_pem)
        _write_private(issued.key, _key_pem(key))
        _write_private(
            issued.bundle,
            _key_pem(key) + certificate_pem + self.certificate_path.read_bytes(),
        )
        return issued
