"""Throw-away certificates for TLS tests (``cryptography``, ECDSA P-256): a CA, leaves with DNS and URI (SPIFFE)
SANs, expired and not-yet-valid ones, self-signed ones, and mismatched keys, written as PEM files.

    pki = TestPKI(tmp_path)
    server = pki.leaf("server", dns=["a.example.com"])                 # Leaf(cert=..., key=...) paths
    client = pki.leaf("client", uri=["spiffe://cluster.local/ns/default/sa/client"])
    old = pki.leaf("old", dns=["a.example.com"], days=-1)              # expired yesterday
    rogue = pki.self_signed("rogue", dns=["a.example.com"])
    pki.ca_path                                                        # the CA bundle
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Leaf:
    name: str
    cert: str
    key: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


class TestPKI:
    """A CA in ``directory`` and the leaves it issues (see the module docstring)."""

    __test__ = False                          # not a pytest test class

    def __init__(self, directory: str | Path, name: str = "meshd-test-ca") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_key = _key()
        now = _dt.datetime.now(_dt.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca_cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                        .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                        .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=30))
                        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                     content_commitment=False, key_encipherment=False,
                                                     data_encipherment=False, key_agreement=False,
                                                     encipher_only=False, decipher_only=False), critical=True)
                        .sign(self.ca_key, hashes.SHA256()))
        self.ca_path = str(self.dir / f"{name}.pem")
        Path(self.ca_path).write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def leaf(self, name: str, *, dns: Sequence[str] = (), uri: Sequence[str] = (), days: float = 2,
             starts_in_days: float = -1 / 24, key: ec.EllipticCurvePrivateKey | None = None) -> Leaf:
        """A leaf issued by the CA, valid from ``starts_in_days`` to ``days`` from now (negative: expired)."""
        return self._issue(name, dns, uri, days, starts_in_days, key or _key(), self.ca_key, self.ca_cert.subject)

    def self_signed(self, name: str, *, dns: Sequence[str] = (), uri: Sequence[str] = ()) -> Leaf:
        key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (list(dns) + list(uri) + [name])[0][:64])])
        return self._issue(name, dns, uri, 2, -1 / 24, key, key, subject)

    def mismatched(self, name: str, *, dns: Sequence[str] = ()) -> Leaf:
        """A certificate whose key file holds another key."""
        leaf = self.leaf(name, dns=dns)
        _write_key(_key(), Path(leaf.key))
        return leaf

    def _issue(self, name: str, dns: Sequence[str], uri: Sequence[str], days: float, starts: float,
               key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey, issuer: x509.Name) -> Leaf:
        now = _dt.datetime.now(_dt.timezone.utc)
        cn = (list(dns) + [name])[0][:64]
        sans = [x509.DNSName(d) for d in dns] + [x509.UniformResourceIdentifier(u) for u in uri]
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now + _dt.timedelta(days=min(starts, days - 1)))
                   .not_valid_after(now + _dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                         ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        cert_path, key_path = self.dir / f"{name}.pem", self.dir / f"{name}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, key_path)
        return Leaf(name, str(cert_path), str(key_path))
