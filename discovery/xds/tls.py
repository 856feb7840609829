"""TLS in xDS: ``UpstreamTlsContext`` / ``DownstreamTlsContext`` → meshd's ``tls`` settings; ``Secret`` → XdsSecret.

Decoders, no I/O (the source writes files, :mod:`discovery.xds.secrets`). A decoded ``tls`` mapping has the
config-file shape of ``meshd.config.ClusterTls`` (upstream) or ``ListenerTls`` (downstream), except that every
file it names is a :class:`Pem`, a placeholder saying where the PEM comes from: a ``filename`` the control
plane gives (``FILE``), bytes inside the resource (``INLINE``), or a part of an SDS secret (``SDS``: the
secret's name and ``cert`` / ``key`` / ``ca``). :func:`resolve` swaps them for paths once the source knows
them; :func:`pems` and :func:`secret_names` list them. A Pem's ``repr`` never shows its bytes.

Upstream (``common_tls_context`` shared with downstream):

- ``sni`` → ``sni``; ``alpn_protocols`` → ``alpn``;
- ``tls_params.tls_minimum_protocol_version``: TLS_AUTO (Envoy's default, TLS 1.2) leaves meshd's default
  (``1.2``), TLSv1_2 / TLSv1_3 → ``min_version`` ``"1.2"`` / ``"1.3"``. TLSv1_0 and TLSv1_1 are **refused**,
  not clamped: meshd speaks TLS 1.2 and 1.3 only, and raising the floor in silence would turn away peers the
  control plane admits. ``tls_maximum_protocol_version``: TLS_AUTO or TLSv1_3; a lower cap is refused (meshd
  cannot cap the version). ``cipher_suites``, ``ecdh_curves`` and ``signature_algorithms`` are **ignored**:
  meshd keeps OpenSSL's defaults as Python's ``ssl`` sets them (TLS 1.3 suites, ECDHE with AEAD or SHA-2 for
  1.2) — Istio lists suites on every inbound listener, refusing them would refuse Istio. ``compliance_policies``
  is refused;
- certificate: ``tls_certificates`` (``certificate_chain`` + ``private_key`` DataSources: ``filename``, which
  must be absolute, or ``inline_bytes`` / ``inline_string``; ``environment_variable``, ``pkcs12``,
  ``private_key_provider`` and ``password`` refused) or ``tls_certificate_sds_secret_configs`` (by name; the
  ``sds_config`` must be ``ads {}`` or ``self {}``). A client presents at most one;
- validation: ``validation_context`` (``trusted_ca`` → ``ca``; without one meshd verifies against the system's
  CAs, which is stricter than Envoy, who then verifies nothing), ``validation_context_sds_secret_config`` (the
  secret's ``trusted_ca``) or ``combined_validation_context`` (its ``default_validation_context`` for the SAN
  matchers and the SDS secret for ``trusted_ca``: Istio's ``ROOTCA``). ``match_typed_subject_alt_names`` (or
  the deprecated ``match_subject_alt_names``, ignored when both are set, as Envoy does) → ``verify_san``: DNS
  and URI SANs with ``exact`` matchers only (a value holding ``*`` is refused: meshd would read it as a
  wildcard); ``prefix`` / ``suffix`` / ``contains`` / ``safe_regex`` matchers, other SAN types, SAN matchers
  without a ``trusted_ca``, ``verify_certificate_spki`` / ``_hash``, ``crl``, ``allow_expired_certificate``,
  ``ACCEPT_UNTRUSTED``, ``custom_validator_config``, ``max_verify_depth`` and certificate provider instances
  are refused, naming the field. With an SNI and no SAN to verify meshd checks the server's certificate against
  the SNI name (Envoy checks only the chain then);
- ``auto_host_sni`` and ``auto_sni_san_validation`` are refused; ``allow_renegotiation``, ``max_session_keys``,
  ``enforce_rsa_key_usage`` ignored.

Downstream: ``certificates`` (every ``tls_certificates`` entry, then every SDS one; at least one),
``validation_context`` → ``client_ca`` and ``allowed_sans`` (the same rules), ``require_client_certificate``
→ ``require_client_cert`` (which needs a CA), ``alpn``, ``min_version``. ``require_sni`` and OCSP stapling
policies other than LENIENT_STAPLING are refused; session ticket and resumption settings are ignored.

Secrets (:func:`decode_secret`): a ``tls_certificate`` (``certificate_chain`` + ``private_key``) or a
``validation_context`` (``trusted_ca``; SAN matchers inside a Secret are refused: give them in the resource's
``combined_validation_context``); other secret types are refused. Inline PEMs are checked here, in the
resource or the Secret that carries them: certificates parse and the leaf is valid now, a key parses
unencrypted and belongs to its certificate, a CA bundle has a certificate valid now (meshd's TLS would not
load anything else).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2

from discovery.xds.decoding import Problem, at, check_ads, indexed, refuse, run, unpack, unpack_field

FILE, INLINE, SDS = "file", "inline", "sds"
TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_SOCKET = "envoy.transport_sockets.raw_buffer"
_RAW_TYPE = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
_Params = common_pb2.TlsParameters
_SanType = common_pb2.SubjectAltNameMatcher.SanType
#: What a part of a secret must be: the SDS part → the Secret type that holds it.
SECRET_TYPE_OF_PART = {"cert": "tls_certificate", "key": "tls_certificate", "ca": "validation_context"}


@dataclass(frozen=True)
class Pem:
    """Where one file of a ``tls`` setting comes from; the source turns it into a path (:func:`resolve`).

    ``kind`` FILE: ``ref`` is the path the control plane gave; INLINE: ``data`` holds the PEM; SDS: ``ref`` is
    the secret's name. ``part`` says what the file holds: ``cert``, ``key`` or ``ca``."""

    kind: str
    ref: str
    part: str
    data: bytes = field(default=b"", repr=False)

    def __repr__(self) -> str:
        where = f"{len(self.data)} bytes" if self.kind == INLINE else self.ref
        return f"Pem({self.kind}:{where}#{self.part})"


def pems(value: Any) -> list[Pem]:
    """Every distinct Pem inside a (frozen) settings value, in the order they appear."""
    found: dict[Pem, None] = {}

    def walk(v: Any) -> None:
        if isinstance(v, Pem):
            found.setdefault(v)
        elif isinstance(v, Mapping):
            for item in v.values():
                walk(item)
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
    walk(value)
    return list(found)


def secret_names(value: Any) -> frozenset[str]:
    return frozenset(p.ref for p in pems(value) if p.kind == SDS)


def resolve(value: Any, path_of: Callable[[Pem], str]) -> Any:
    """``value`` as plain dicts and lists, every Pem replaced by ``path_of(pem)``."""
    if isinstance(value, Pem):
        return path_of(value)
    if isinstance(value, Mapping):
        return {k: resolve(v, path_of) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve(v, path_of) for v in value]
    return value


# -- transport sockets ---------------------------------------------------------------------------------
def transport_socket(ts: Any, upstream: bool) -> dict[str, Any] | None:
    """A ``TransportSocket``: TLS → the ``tls`` mapping, raw_buffer → None; anything else is a Problem."""
    type_name = ts.typed_config.type_url.rpartition("/")[2] if ts.WhichOneof("config_type") else ""
    context = tls_pb2.UpstreamTlsContext if upstream else tls_pb2.DownstreamTlsContext
    if ts.name == RAW_SOCKET or type_name == _RAW_TYPE:
        return None
    if ts.name == TLS_SOCKET or type_name == context.DESCRIPTOR.full_name:
        if ts.WhichOneof("config_type") != "typed_config":
            raise Problem("typed_config: missing (a TLS transport socket needs its context)")
        with at("typed_config"):
            message = unpack_field(ts.typed_config, context)
            return upstream_tls(message) if upstream else downstream_tls(message)
    if not ts.name and not type_name:
        raise Problem("name: missing")
    raise Problem(f"{ts.name or type_name!r}: transport socket is not supported ({TLS_SOCKET}, {RAW_SOCKET})")


def upstream_tls(ctx: tls_pb2.UpstreamTlsContext) -> dict[str, Any]:
    """An ``UpstreamTlsContext`` → ``ClusterTls`` shape (see the module docstring)."""
    refuse(ctx, ("auto_host_sni", "auto_sni_san_validation"))
    out: dict[str, Any] = {}
    if ctx.sni:
        out["sni"] = ctx.sni
    with at("common_tls_context"):
        certs, ca, sans, rest = _common(ctx.common_tls_context, upstream=True)
        if len(certs) > 1:
            raise Problem(f"tls_certificates: {len(certs)} certificates; a client presents one")
    if certs:
        out["cert"], out["key"] = certs[0]["cert"], certs[0]["key"]
    if ca is not None:
        out["ca"] = ca
    if sans:
        out["verify_san"] = sans
    out.update(rest)
    return out


def downstream_tls(ctx: tls_pb2.DownstreamTlsContext) -> dict[str, Any]:
    """A ``DownstreamTlsContext`` → ``ListenerTls`` shape (see the module docstring)."""
    if ctx.HasField("require_sni") and ctx.require_sni.value:
        raise Problem("require_sni: is not supported (meshd serves its first certificate to clients without SNI)")
    if ctx.ocsp_staple_policy != tls_pb2.DownstreamTlsContext.LENIENT_STAPLING:
        policy = tls_pb2.DownstreamTlsContext.OcspStaplePolicy.Name(ctx.ocsp_staple_policy)
        raise Problem(f"ocsp_staple_policy: {policy} is not supported (meshd staples no OCSP response)")
    with at("common_tls_context"):
        certs, ca, sans, rest = _common(ctx.common_tls_context, upstream=False)
        if not certs:
            raise Problem("no certificate (tls_certificates or tls_certificate_sds_secret_configs)")
    out: dict[str, Any] = {"certificates": certs}
    if ca is not None:
        out["client_ca"] = ca
    if ctx.HasField("require_client_certificate") and ctx.require_client_certificate.value:
        if ca is None:
            raise Problem("require_client_certificate: needs a validation context with a trusted_ca "
                          "(the CA clients are verified against)")
        out["require_client_cert"] = True
    if sans:
        out["allowed_sans"] = sans
    out.update(rest)
    return out


# -- the common context --------------------------------------------------------------------------------
def _common(ctx: Any, upstream: bool) -> tuple[list[dict[str, Pem]], Pem | None, list[str], dict[str, Any]]:
    refuse(ctx, ("tls_certificate_provider_instance", "tls_certificate_certificate_provider",
                 "tls_certificate_certificate_provider_instance", "custom_tls_certificate_selector",
                 "custom_handshaker"))
    rest: dict[str, Any] = {}
    if ctx.HasField("tls_params"):
        with at("tls_params"):
            rest.update(_params(ctx.tls_params))
    if ctx.alpn_protocols:
        rest["alpn"] = list(ctx.alpn_protocols)
    certs: list[dict[str, Pem]] = []
    for i, cert in enumerate(ctx.tls_certificates):
        with at(indexed("tls_certificates", i)):
            certs.append(certificate(cert))
    for i, sds in enumerate(ctx.tls_certificate_sds_secret_configs):
        with at(indexed("tls_certificate_sds_secret_configs", i, sds.name)):
            name = _sds(sds)
        certs.append({"cert": Pem(SDS, name, "cert"), "key": Pem(SDS, name, "key")})
    ca, sans = _validation_of(ctx, upstream)
    return certs, ca, sans, rest


def _params(p: Any) -> dict[str, Any]:
    refuse(p, ("compliance_policies",))
    low, high = p.tls_minimum_protocol_version, p.tls_maximum_protocol_version
    if low in (_Params.TLSv1_0, _Params.TLSv1_1):
        raise Problem(f"tls_minimum_protocol_version: {_Params.TlsProtocol.Name(low)} is not supported "
                      f"(meshd speaks TLS 1.2 and 1.3)")
    if high not in (_Params.TLS_AUTO, _Params.TLSv1_3):
        raise Problem(f"tls_maximum_protocol_version: {_Params.TlsProtocol.Name(high)} is not supported "
                      f"(meshd cannot cap the version below TLS 1.3)")
    if low not in (_Params.TLS_AUTO, _Params.TLSv1_2, _Params.TLSv1_3):
        raise Problem(f"tls_minimum_protocol_version: unknown value {low}")
    return {"min_version": {_Params.TLSv1_2: "1.2", _Params.TLSv1_3: "1.3"}[low]} if low else {}


def certificate(cert: Any) -> dict[str, Pem]:
    """A ``TlsCertificate`` → ``{"cert": Pem, "key": Pem}``."""
    refuse(cert, ("pkcs12", "private_key_provider", "password"))
    for name in ("certificate_chain", "private_key"):
        if not cert.HasField(name):
            raise Problem(f"{name}: missing")
    with at("certificate_chain"):
        chain = _data(cert.certificate_chain, "cert")
    with at("private_key"):
        key = _data(cert.private_key, "key")
    if chain.kind == INLINE and key.kind == INLINE:
        check_pair(chain.data, key.data)
    return {"cert": chain, "key": key}


def _sds(sds: Any) -> str:
    if not sds.name:
        raise Problem("name: must not be empty")
    if not sds.HasField("sds_config"):
        raise Problem("sds_config: missing (a static secret of Envoy's bootstrap; meshd takes secrets by SDS "
                      "on the ADS stream, ads {} or self {})")
    with at("sds_config"):
        check_ads(sds.sds_config)
    return sds.name


def _validation_of(ctx: Any, upstream: bool) -> tuple[Pem | None, list[str]]:
    which = ctx.WhichOneof("validation_context_type")
    if which is None:
        return None, []
    with at(which):
        if which == "validation_context":
            return validation(ctx.validation_context, upstream)
        if which == "validation_context_sds_secret_config":
            return Pem(SDS, _sds(ctx.validation_context_sds_secret_config), "ca"), []
        if which == "combined_validation_context":
            combined = ctx.combined_validation_context
            refuse(combined, ("validation_context_certificate_provider",
                              "validation_context_certificate_provider_instance"))
            if not combined.HasField("validation_context_sds_secret_config"):
                raise Problem("validation_context_sds_secret_config: missing")
            with at("validation_context_sds_secret_config"):
                ca = Pem(SDS, _sds(combined.validation_context_sds_secret_config), "ca")
            with at("default_validation_context"):
                _, sans = validation(combined.default_validation_context, upstream, ca_given=True)
            return ca, sans
        raise Problem("is not supported (validation_context, validation_context_sds_secret_config, "
                      "combined_validation_context)")


def validation(cvc: Any, upstream: bool, ca_given: bool = False) -> tuple[Pem | None, list[str]]:
    """A ``CertificateValidationContext`` → (``trusted_ca`` as a Pem or None, SAN patterns)."""
    refuse(cvc, ("ca_certificate_provider_instance", "verify_certificate_spki", "verify_certificate_hash", "crl",
                 "allow_expired_certificate", "custom_validator_config", "max_verify_depth"))
    if cvc.trust_chain_verification != common_pb2.CertificateValidationContext.VERIFY_TRUST_CHAIN:
        raise Problem("trust_chain_verification: ACCEPT_UNTRUSTED is not supported")
    if cvc.HasField("require_signed_certificate_timestamp") and cvc.require_signed_certificate_timestamp.value:
        raise Problem("require_signed_certificate_timestamp: is not supported")
    if cvc.HasField("system_root_certs") and not upstream:
        raise Problem("system_root_certs: is not supported here (give a trusted_ca: clients and SDS secrets need one)")
    ca = None
    if cvc.HasField("trusted_ca"):
        with at("trusted_ca"):
            ca = _data(cvc.trusted_ca, "ca")
    sans = _sans(cvc)
    if sans and ca is None and not ca_given:
        raise Problem("trusted_ca: missing (SAN matchers without a trusted CA verify nothing; Envoy refuses them "
                      "too)")
    return ca, sans


def _sans(cvc: Any) -> list[str]:
    out: list[str] = []
    if cvc.match_typed_subject_alt_names:
        for i, m in enumerate(cvc.match_typed_subject_alt_names):
            with at(indexed("match_typed_subject_alt_names", i)):
                kind = _SanType.Name(m.san_type) if m.san_type in _SanType.values() else str(m.san_type)
                if kind not in ("DNS", "URI"):
                    raise Problem(f"san_type: {kind} is not supported (DNS, URI)")
                with at("matcher"):
                    out.append(_san(m.matcher, kind))
        return out
    for i, sm in enumerate(cvc.match_subject_alt_names):   # deprecated, untyped; ignored next to the typed ones
        with at(indexed("match_subject_alt_names", i)):
            out.append(_san(sm, None))
    return out


def _san(sm: Any, kind: str | None) -> str:
    which = sm.WhichOneof("match_pattern")
    if which != "exact":
        raise Problem(f"{which or 'match_pattern'}: " + (
            f"a {which} SAN matcher is not supported (exact; meshd's patterns take '*' for one URI path segment "
            f"or one DNS label)" if which else "missing"))
    value = sm.exact
    if not value or any(c.isspace() for c in value):
        raise Problem(f"exact: {value!r} is not a SAN")
    if "*" in value:
        raise Problem(f"exact: {value!r} holds '*', which meshd would read as a wildcard")
    uri = "://" in value
    if kind == "URI" and not uri:
        raise Problem(f"exact: {value!r} is not a URI (scheme://authority/path)")
    if kind == "DNS" and uri:
        raise Problem(f"exact: {value!r} is not a DNS name")
    if uri:
        scheme, _, rest = value.partition("://")
        if not scheme or not rest.partition("/")[0]:
            raise Problem(f"exact: {value!r}: a URI SAN needs a scheme and an authority")
        if sm.ignore_case:
            raise Problem("ignore_case: is not supported for URI SANs (meshd compares their paths exactly)")
    elif any(label == "" for label in value.split(".")):
        raise Problem(f"exact: {value!r} is not a DNS name (empty label)")
    return value


def _data(ds: Any, part: str) -> Pem:
    which = ds.WhichOneof("specifier")
    if which == "filename":
        if not os.path.isabs(ds.filename):
            raise Problem(f"filename: {ds.filename!r} is not an absolute path")
        return Pem(FILE, ds.filename, part)
    if which in ("inline_bytes", "inline_string"):
        data = ds.inline_bytes if which == "inline_bytes" else ds.inline_string.encode()
        with at(which):
            check_pem(part, data)
        return Pem(INLINE, "", part, data)
    raise Problem(f"{which}: is not supported (filename, inline_bytes, inline_string)" if which
                  else "specifier: missing (filename, inline_bytes, inline_string)")


# -- PEM checks ----------------------------------------------------------------------------------------
def check_pem(part: str, data: bytes, now: float | None = None) -> None:
    """A Problem unless ``data`` is what ``part`` needs (see the module docstring); never quotes the bytes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    if part == "key":
        try:
            serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise Problem(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
        return
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise Problem("not PEM certificates") from None
    if not certs:
        raise Problem("no certificate in it")
    now = time.time() if now is None else now
    valid = [c.not_valid_before_utc.timestamp() <= now < c.not_valid_after_utc.timestamp() for c in certs]
    if part == "cert" and not valid[0]:
        leaf = certs[0]
        raise Problem(f"the certificate (serial {leaf.serial_number:x}) is not valid now "
                      f"({_iso(leaf.not_valid_before_utc)} to {_iso(leaf.not_valid_after_utc)})")
    if part == "ca" and not any(valid):
        raise Problem("no CA certificate in it is valid now")


def check_pair(cert: bytes, key: bytes) -> None:
    """A Problem unless the private key belongs to the chain's first certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf = x509.load_pem_x509_certificates(cert)[0].public_key().public_bytes(*spki)
    if serialization.load_pem_private_key(key, password=None).public_key().public_bytes(*spki) != leaf:
        raise Problem("private_key: does not belong to the certificate_chain's first certificate")


def _iso(when: _dt.datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# -- Secret --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class XdsSecret:
    """A decoded SDS Secret: its type and its parts (``cert`` + ``key``, or ``ca``), FILE or INLINE Pems."""

    name: str
    type: str                         # "tls_certificate" | "validation_context"
    parts: Mapping[str, Pem]

    def __repr__(self) -> str:
        return f"<XdsSecret {self.name!r} {self.type} {dict(self.parts)}>"


def decode_secret(any_: Any) -> XdsSecret:
    """An ``Any`` holding a ``Secret`` → :class:`XdsSecret`, or ResourceError naming the secret and field."""
    secret = unpack(any_, secret_pb2.Secret, "secret")
    return run("secret", secret.name, lambda: _secret(secret))


def _secret(s: secret_pb2.Secret) -> XdsSecret:
    if not s.name:
        raise Problem("name: must not be empty")
    which = s.WhichOneof("type")
    with at(which or "type"):
        if which == "tls_certificate":
            parts: dict[str, Pem] = certificate(s.tls_certificate)
        elif which == "validation_context":
            ca, sans = validation(s.validation_context, upstream=False, ca_given=True)
            if sans:
                raise Problem("match_typed_subject_alt_names: SAN matchers in a Secret are not supported (give "
                              "them in the resource's combined_validation_context.default_validation_context)")
            if ca is None:
                raise Problem("trusted_ca: missing")
            parts = {"ca": ca}
        else:
            raise Problem(f"a {which} secret is not supported (tls_certificate, validation_context)" if which
                          else "missing (tls_certificate, validation_context)")
    return XdsSecret(s.name, which, MappingProxyType(parts))
