"""Certificate files: read, checked and described (what ``GET /certs`` shows), before any context is built from them.

A certificate set is usable only when every file is readable PEM, the key belongs to the certificate, and the
certificate is valid now (not expired, not yet to come); :func:`inspect_pair` says which of these fails, naming the
file. ``ssl`` then loads the same files into a context (``load_cert_chain`` checks the key again).
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID


class CertError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class CertInfo:
    """One certificate, as ``GET /certs`` shows it."""

    file: str
    subject: str
    sans: tuple[str, ...]              # "DNS:a.example.com", "URI:spiffe://...", "IP:10.0.0.1"
    serial: str                        # hex
    not_before: float                  # epoch seconds
    not_after: float

    @property
    def dns_names(self) -> tuple[str, ...]:
        """The names SNI selects this certificate by: its DNS SANs, else its subject CN."""
        names = tuple(s[4:].lower() for s in self.sans if s.startswith("DNS:"))
        if names:
            return names
        cn = self.subject.partition("CN=")[2].partition(",")[0]
        return (cn.lower(),) if cn else ()

    def to_json(self, now: float) -> dict:
        return {"file": self.file, "subject": self.subject, "sans": list(self.sans), "serial": self.serial,
                "not_before": _iso(self.not_before), "not_after": _iso(self.not_after),
                "expires_in_s": round(self.not_after - now)}


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as src:
            return src.read()
    except OSError as exc:
        raise CertError(f"{what} {path}: unreadable ({exc.strerror or exc})") from None


def describe(cert: x509.Certificate, path: str) -> CertInfo:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple([f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)] +
                     [f"URI:{u}" for u in ext.get_values_for_type(x509.UniformResourceIdentifier)] +
                     [f"IP:{ip}" for ip in ext.get_values_for_type(x509.IPAddress)])
    except x509.ExtensionNotFound:
        sans = ()
    subject = cert.subject.rfc4514_string()
    if not subject:
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        subject = f"CN={cn[0].value}" if cn else ""
    return CertInfo(path, subject, sans, format(cert.serial_number, "x"),
                    cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp())


def load_certs(path: str, what: str = "certificate") -> list[x509.Certificate]:
    data = _read(path, what)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertError(f"{what} {path}: not PEM certificates ({exc})") from None
    if not certs:
        raise CertError(f"{what} {path}: no certificate in it")
    return certs


def inspect_pair(cert_path: str, key_path: str, now: float) -> CertInfo:
    """The leaf certificate of ``cert_path``, checked against ``key_path`` and the clock; CertError otherwise."""
    leaf = load_certs(cert_path)[0]
    data = _read(key_path, "key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CertError(f"key {key_path}: not an unencrypted PEM private key ({exc})") from None
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) \
            != leaf.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo):
        raise CertError(f"key {key_path} does not match certificate {cert_path}")
    info = describe(leaf, cert_path)
    check_validity(info, now)
    return info


def check_validity(info: CertInfo, now: float) -> None:
    if now >= info.not_after:
        raise CertError(f"certificate {info.file} expired at {_iso(info.not_after)}")
    if now < info.not_before:
        raise CertError(f"certificate {info.file} is not valid before {_iso(info.not_before)}")


def inspect_ca(path: str, now: float) -> list[CertInfo]:
    """Every certificate of a CA bundle (at least one must be valid now)."""
    infos = [describe(c, path) for c in load_certs(path, "CA")]
    if not any(i.not_before <= now < i.not_after for i in infos):
        raise CertError(f"CA {path}: no certificate in it is valid now")
    return infos


def file_state(paths: tuple[str, ...]) -> tuple:
    """What the watcher compares: (mtime_ns, size, inode) per file, None for a missing one."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)
