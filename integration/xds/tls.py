"""Builders for TLS in xDS resources, as a control plane sends them (``envoy.extensions.transport_sockets.tls.v3``).

Contract: small functions returning protobuf messages; secrets come by SDS over ADS (``sds_config: ads {}``),
the form meshd takes (istiod's own sidecars get them from the agent's ``sds-grpc`` cluster instead).

- :func:`certificate_secret` / :func:`ca_secret`: SDS ``Secret`` resources holding PEM bytes
  (``tls_certificate`` chain + key, ``validation_context.trusted_ca``).
- :func:`upstream_context`, :func:`downstream_context`: TLS contexts with certificates by SDS name (or inline),
  a CA by SDS name (``combined_validation_context`` when SANs are given, Istio's shape), SAN matchers.
- :func:`tls_socket`, :func:`raw_socket`: ``TransportSocket`` wrappers.
- :func:`istio_mutual`: a cluster made ISTIO_MUTUAL the way istiod does it (``pilot/pkg/networking/core/
  cluster_tls.go``): ``transport_socket_matches`` ``tlsMode-istio`` (match ``{tlsMode: istio}``) → TLS with
  SNI ``outbound_.<port>_.<subset>_.<host>``, ALPN ``istio-peer-exchange, istio``, TLS 1.2–1.3, certificate
  ``default`` and CA ``ROOTCA``; then ``tlsMode-disabled`` (match ``{}``) → raw_buffer.
- :func:`filter_chain`, :func:`socket_listener`: a listener on ``host:port`` whose chains end in an HCM taking
  routes by RDS, each chain with an optional TLS context and ``server_names``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import struct_pb2, wrappers_pb2

from integration.xds.istio import ROUTER_FILTER, _ads, _pack

TLS_SOCKET = "envoy.transport_sockets.tls"
RAW_SOCKET = "envoy.transport_sockets.raw_buffer"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ISTIO_ALPN = ("istio-peer-exchange", "istio")


def sds(name: str) -> secret_pb2.SdsSecretConfig:
    """A secret by name over the ADS stream."""
    return secret_pb2.SdsSecretConfig(name=name, sds_config=_ads())


def certificate_secret(name: str, cert_pem: bytes, key_pem: bytes) -> secret_pb2.Secret:
    return secret_pb2.Secret(name=name, tls_certificate=common_pb2.TlsCertificate(
        certificate_chain=base_pb2.DataSource(inline_bytes=cert_pem),
        private_key=base_pb2.DataSource(inline_bytes=key_pem)))


def ca_secret(name: str, ca_pem: bytes) -> secret_pb2.Secret:
    return secret_pb2.Secret(name=name, validation_context=common_pb2.CertificateValidationContext(
        trusted_ca=base_pb2.DataSource(inline_bytes=ca_pem)))


def san_matchers(sans: Iterable[str]) -> list[common_pb2.SubjectAltNameMatcher]:
    """Exact SAN matchers, URI for ``scheme://...``, DNS otherwise."""
    Type = common_pb2.SubjectAltNameMatcher
    return [Type(san_type=Type.URI if "://" in san else Type.DNS, matcher=string_pb2.StringMatcher(exact=san))
            for san in sans]


def _common(cert_sds: Sequence[str], ca_sds: str | None, sans: Sequence[str], alpn: Sequence[str],
            min_version: int | None) -> tls_pb2.CommonTlsContext:
    common = tls_pb2.CommonTlsContext(alpn_protocols=list(alpn),
                                      tls_certificate_sds_secret_configs=[sds(n) for n in cert_sds])
    if min_version is not None:
        common.tls_params.CopyFrom(common_pb2.TlsParameters(
            tls_minimum_protocol_version=min_version,
            tls_maximum_protocol_version=common_pb2.TlsParameters.TLSv1_3))
    if ca_sds is not None and sans:
        common.combined_validation_context.CopyFrom(tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=common_pb2.CertificateValidationContext(
                match_typed_subject_alt_names=san_matchers(sans)),
            validation_context_sds_secret_config=sds(ca_sds)))
    elif ca_sds is not None:
        common.validation_context_sds_secret_config.CopyFrom(sds(ca_sds))
    return common


def upstream_context(*, sni: str = "", cert_sds: str | None = None, ca_sds: str | None = None,
                     sans: Sequence[str] = (), alpn: Sequence[str] = (),
                     min_version: int | None = None) -> tls_pb2.UpstreamTlsContext:
    return tls_pb2.UpstreamTlsContext(sni=sni, common_tls_context=_common(
        [cert_sds] if cert_sds else [], ca_sds, sans, alpn, min_version))


def downstream_context(*, cert_sds: Sequence[str] = (), client_ca_sds: str | None = None, sans: Sequence[str] = (),
                       require_client: bool = False, alpn: Sequence[str] = (),
                       min_version: int | None = None) -> tls_pb2.DownstreamTlsContext:
    ctx = tls_pb2.DownstreamTlsContext(common_tls_context=_common(cert_sds, client_ca_sds, sans, alpn, min_version))
    if require_client:
        ctx.require_client_certificate.CopyFrom(wrappers_pb2.BoolValue(value=True))
    return ctx


def tls_socket(context: tls_pb2.UpstreamTlsContext | tls_pb2.DownstreamTlsContext) -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=_pack(context))


def raw_socket() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name=RAW_SOCKET, typed_config=_pack(raw_buffer_pb2.RawBuffer()))


def istio_sni(port: int, subset: str, host: str) -> str:
    """Istio's mTLS SNI ``outbound_.<port>_.<subset or _>_.<host>``."""
    return f"outbound_.{port}_.{subset or '_'}_.{host}"


def istio_mutual(cluster: cluster_pb2.Cluster, *, sni: str, sans: Sequence[str], cert: str = "default",
                 ca: str = "ROOTCA", alpn: Sequence[str] = ISTIO_ALPN) -> cluster_pb2.Cluster:
    """``cluster`` with Istio's ISTIO_MUTUAL ``transport_socket_matches`` (see the module docstring)."""
    context = upstream_context(sni=sni, cert_sds=cert, ca_sds=ca, sans=sans, alpn=alpn,
                               min_version=common_pb2.TlsParameters.TLSv1_2)
    match = struct_pb2.Struct()
    match.update({"tlsMode": "istio"})
    out = cluster_pb2.Cluster()
    out.CopyFrom(cluster)
    out.transport_socket_matches.extend([
        cluster_pb2.Cluster.TransportSocketMatch(name="tlsMode-istio", match=match,
                                                 transport_socket=tls_socket(context)),
        cluster_pb2.Cluster.TransportSocketMatch(name="tlsMode-disabled", match=struct_pb2.Struct(),
                                                 transport_socket=raw_socket())])
    return out


def filter_chain(route_config_name: str, *, context: tls_pb2.DownstreamTlsContext | None = None,
                 server_names: Sequence[str] = (), name: str = "") -> listener_components_pb2.FilterChain:
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name or "http", rds=hcm_pb2.Rds(config_source=_ads(), route_config_name=route_config_name),
        http_filters=[hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=_pack(router_pb2.Router()))])
    chain = listener_components_pb2.FilterChain(name=name, filters=[listener_components_pb2.Filter(
        name=HCM_FILTER, typed_config=_pack(manager))])
    if server_names:
        chain.filter_chain_match.server_names.extend(server_names)
    if context is not None:
        chain.filter_chain_match.transport_protocol = "tls"
        chain.transport_socket.CopyFrom(tls_socket(context))
    return chain


def socket_listener(name: str, host: str, port: int,
                    *chains: listener_components_pb2.FilterChain) -> listener_pb2.Listener:
    return listener_pb2.Listener(name=name, address=address_pb2.Address(socket_address=address_pb2.SocketAddress(
        address=host, port_value=port)), filter_chains=list(chains))
