"""TLS in xDS resources (discovery.xds.tls, clusters, listeners): UpstreamTlsContext, transport_socket_matches,
DownstreamTlsContext across filter chains, SDS Secrets — each mapping, each refusal with the field it names.

What decodes is also resolved (Pems → paths) and validated with meshd's own models (ClusterConfig, ListenerTls),
so that what a control plane sends is what the daemon accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import any_pb2, struct_pb2, wrappers_pb2

from discovery.xds import resources as res
from discovery.xds import tls as xtls
from discovery.xds.endpoints import TRANSPORT_SOCKET_MATCH
from discovery.xds.resources import ResourceError
from discovery.xds.tls import FILE, INLINE, SDS, Pem
from integration.certs import TestPKI
from integration.xds import istio
from integration.xds import tls as build
from meshd import config as meshd_config

HOST = "reviews.default.svc.cluster.local"
NAME = istio.cluster_name("outbound", 9080, "", HOST)
SPIFFE = "spiffe://cluster.local/ns/default/sa/reviews"
Params = common_pb2.TlsParameters
SanType = common_pb2.SubjectAltNameMatcher


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def leaf(pki):
    made = pki.leaf("leaf", uri=[SPIFFE], dns=["reviews.example.com"])
    return Path(made.cert).read_bytes(), Path(made.key).read_bytes(), made


def pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def paths(pem: Pem) -> str:
    return pem.ref if pem.kind == FILE else f"/secrets/{pem.kind}-{pem.ref or len(pem.data)}.{pem.part}.pem"


def cluster_tls(cluster: cluster_pb2.Cluster) -> dict | None:
    """Decode, then check that meshd's ClusterConfig takes the resolved settings."""
    decoded = res.decode_cluster(pack(cluster))
    settings = xtls.resolve(decoded.settings, paths)
    meshd_config.ClusterConfig.model_validate({**settings, "name": decoded.name})
    return None if "tls" not in decoded.settings else xtls.resolve(decoded.settings["tls"], lambda pem: pem)


def error(decoder, message) -> str:
    with pytest.raises(ResourceError) as info:
        decoder(pack(message))
    return str(info.value)


def with_socket(context: tls_pb2.UpstreamTlsContext) -> cluster_pb2.Cluster:
    cluster = istio.eds_cluster(NAME)
    cluster.transport_socket.CopyFrom(build.tls_socket(context))
    return cluster


def common(**kwargs) -> tls_pb2.CommonTlsContext:
    return tls_pb2.CommonTlsContext(**kwargs)


def inline(data: bytes) -> base_pb2.DataSource:
    return base_pb2.DataSource(inline_bytes=data)


# -- clusters --------------------------------------------------------------------------------------------
def test_istio_mutual_cluster_is_tls_for_the_marked_endpoints():
    sni = build.istio_sni(9080, "", HOST)
    cluster = build.istio_mutual(istio.eds_cluster(NAME), sni=sni, sans=[SPIFFE])
    assert cluster_tls(cluster) == {
        "sni": sni, "cert": Pem(SDS, "default", "cert"), "key": Pem(SDS, "default", "key"),
        "ca": Pem(SDS, "ROOTCA", "ca"), "verify_san": [SPIFFE], "min_version": "1.2",
        "alpn": ["istio-peer-exchange", "istio"], "endpoints": "marked",
        "marker": {"envoy.transport_socket_match.tlsMode": "istio"}}
    assert res.decode_cluster(pack(cluster)).secret_names == {"default", "ROOTCA"}
    # the marker's keys are the keys EDS gives an endpoint that Istio marks
    cla = istio.load_assignment(NAME, istio.locality([istio.lb_endpoint("10.0.0.1", 9080, tls_mode="istio"),
                                                      istio.lb_endpoint("10.0.0.2", 9080)]))
    marked, plain = res.decode_assignment(pack(cla)).endpoints
    assert marked.metadata[f"{TRANSPORT_SOCKET_MATCH}.tlsMode"] == "istio"
    assert f"{TRANSPORT_SOCKET_MATCH}.tlsMode" not in plain.metadata


def test_transport_socket_alone_dials_every_endpoint(leaf):
    cert, key, made = leaf
    context = tls_pb2.UpstreamTlsContext(sni="reviews.example.com", common_tls_context=common(
        tls_certificates=[common_pb2.TlsCertificate(certificate_chain=inline(cert), private_key=inline(key))],
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(filename="/etc/certs/root-cert.pem"),
            match_typed_subject_alt_names=build.san_matchers(["reviews.example.com", SPIFFE]))))
    got = cluster_tls(with_socket(context))
    assert got == {"sni": "reviews.example.com", "cert": Pem(INLINE, "", "cert", cert),
                   "key": Pem(INLINE, "", "key", key), "ca": Pem(FILE, "/etc/certs/root-cert.pem", "ca"),
                   "verify_san": ["reviews.example.com", SPIFFE]}
    assert "PRIVATE" not in repr(got["key"]) and repr(got["key"]) == f"Pem(inline:{len(key)} bytes#key)"
    assert res.decode_cluster(pack(with_socket(context))).secret_names == frozenset()


def test_raw_buffer_and_no_socket_are_plaintext():
    cluster = istio.eds_cluster(NAME)
    assert cluster_tls(cluster) is None
    cluster.transport_socket.CopyFrom(build.raw_socket())
    assert cluster_tls(cluster) is None
    cluster.transport_socket.CopyFrom(base_pb2.TransportSocket(name="envoy.transport_sockets.alts"))
    assert error(res.decode_cluster, cluster) == (
        f"cluster \"{NAME}\": transport_socket: 'envoy.transport_sockets.alts': transport socket is not supported "
        f"(envoy.transport_sockets.tls, envoy.transport_sockets.raw_buffer)")
    cluster.transport_socket.CopyFrom(base_pb2.TransportSocket(name="envoy.transport_sockets.tls"))
    assert "transport_socket: typed_config: missing" in error(res.decode_cluster, cluster)


def _match(name: str, socket: base_pb2.TransportSocket, **fields) -> cluster_pb2.Cluster.TransportSocketMatch:
    match = struct_pb2.Struct()
    match.update(fields)
    return cluster_pb2.Cluster.TransportSocketMatch(name=name, match=match, transport_socket=socket)


def test_transport_socket_matches_shapes():
    mtls = build.tls_socket(build.upstream_context(cert_sds="default", ca_sds="ROOTCA"))
    other = build.tls_socket(build.upstream_context(cert_sds="other", ca_sds="ROOTCA"))
    raw = build.raw_socket()
    cluster = istio.eds_cluster(NAME)
    cluster.transport_socket_matches.extend([_match("tls", mtls, tlsMode="istio", v=1), _match("rest", raw),
                                             _match("never", other, x="y")])   # after {}: never used
    assert cluster_tls(cluster)["marker"] == {f"{TRANSPORT_SOCKET_MATCH}.tlsMode": "istio",
                                              f"{TRANSPORT_SOCKET_MATCH}.v": "1"}
    everything = istio.eds_cluster(NAME)                                     # one TLS for all: endpoints all
    everything.transport_socket.CopyFrom(mtls)
    everything.transport_socket_matches.extend([_match("same", mtls, tlsMode="istio")])
    assert "endpoints" not in cluster_tls(everything)
    first_empty = istio.eds_cluster(NAME)
    first_empty.transport_socket_matches.extend([_match("all", raw), _match("tls", mtls, tlsMode="istio")])
    assert cluster_tls(first_empty) is None
    cases = [
        ([_match("a", mtls, tlsMode="istio"), _match("b", other, zone="z")], None,
         "transport_socket_matches[1](b): a second TLS entry (after transport_socket_matches[0](a)) is not supported"),
        ([_match("plain", raw, legacy="yes"), _match("tls", mtls, tlsMode="istio")], None,
         "transport_socket_matches[0](plain): plaintext for the endpoints it matches, ahead of the TLS entry "
         "transport_socket_matches[1](tls), is not supported"),
        ([_match("plain", raw, legacy="yes")], mtls,
         "transport_socket_matches[0](plain): plaintext for some endpoints while the others get TLS is not supported"),
        ([_match("other", other, x="y")], mtls,
         "transport_socket_matches[0](other): another TLS setting for some endpoints"),
    ]
    for matches, default, message in cases:
        bad = istio.eds_cluster(NAME)
        bad.transport_socket_matches.extend(matches)
        if default is not None:
            bad.transport_socket.CopyFrom(default)
        assert message in error(res.decode_cluster, bad)
    bad = istio.eds_cluster(NAME)
    bad.transport_socket_matches.extend([cluster_pb2.Cluster.TransportSocketMatch(name="x")])
    assert "transport_socket_matches[0](x): transport_socket: missing" in error(res.decode_cluster, bad)
    bad = istio.eds_cluster(NAME)
    bad.transport_socket_matcher.SetInParent()
    assert "transport_socket_matcher: is not supported" in error(res.decode_cluster, bad)


@pytest.mark.parametrize("low, high, want", [
    (Params.TLS_AUTO, Params.TLS_AUTO, None), (Params.TLSv1_2, Params.TLSv1_3, "1.2"),
    (Params.TLSv1_3, Params.TLS_AUTO, "1.3")])
def test_protocol_versions(low, high, want):
    context = build.upstream_context(cert_sds="default")
    context.common_tls_context.tls_params.CopyFrom(Params(tls_minimum_protocol_version=low,
                                                          tls_maximum_protocol_version=high,
                                                          cipher_suites=["ECDHE-ECDSA-AES256-GCM-SHA384"]))
    assert cluster_tls(with_socket(context)).get("min_version") == want     # cipher_suites: ignored


@pytest.mark.parametrize("params, message", [
    (Params(tls_minimum_protocol_version=Params.TLSv1_0),
     "tls_minimum_protocol_version: TLSv1_0 is not supported (meshd speaks TLS 1.2 and 1.3)"),
    (Params(tls_minimum_protocol_version=Params.TLSv1_1), "tls_minimum_protocol_version: TLSv1_1 is not supported"),
    (Params(tls_maximum_protocol_version=Params.TLSv1_2),
     "tls_maximum_protocol_version: TLSv1_2 is not supported (meshd cannot cap the version"),
    (Params(compliance_policies=[Params.FIPS_202205]), "compliance_policies: is not supported"),
])
def test_protocol_versions_refused(params, message):
    context = build.upstream_context(cert_sds="default")
    context.common_tls_context.tls_params.CopyFrom(params)
    assert f'cluster "{NAME}": transport_socket.typed_config.common_tls_context.tls_params: {message}' in error(
        res.decode_cluster, with_socket(context))


def _validation(**kwargs) -> tls_pb2.UpstreamTlsContext:
    kwargs.setdefault("trusted_ca", base_pb2.DataSource(filename="/etc/ca.pem"))
    return tls_pb2.UpstreamTlsContext(common_tls_context=common(
        validation_context=common_pb2.CertificateValidationContext(**kwargs)))


def _typed(kind: int, **matcher) -> common_pb2.SubjectAltNameMatcher:
    return SanType(san_type=kind, matcher=string_pb2.StringMatcher(**matcher))


def test_san_matchers():
    both = _validation(match_typed_subject_alt_names=[_typed(SanType.URI, exact=SPIFFE)],
                       match_subject_alt_names=[string_pb2.StringMatcher(exact="ignored.example.com")])
    assert cluster_tls(with_socket(both))["verify_san"] == [SPIFFE]                 # the deprecated list is ignored
    legacy = _validation(match_subject_alt_names=[string_pb2.StringMatcher(exact="a.example.com"),
                                                  string_pb2.StringMatcher(exact=SPIFFE)])
    assert cluster_tls(with_socket(legacy))["verify_san"] == ["a.example.com", SPIFFE]
    dns = _validation(match_typed_subject_alt_names=[_typed(SanType.DNS, exact="A.example.com", ignore_case=True)])
    assert cluster_tls(with_socket(dns))["verify_san"] == ["A.example.com"]   # meshd's DNS matching ignores case
    system = tls_pb2.UpstreamTlsContext(common_tls_context=common(validation_context=common_pb2
                                                                  .CertificateValidationContext(
                                                                      system_root_certs={})))
    assert "ca" not in cluster_tls(with_socket(system))                       # the system's CAs


at = f'cluster "{NAME}": transport_socket.typed_config.common_tls_context.validation_context'


@pytest.mark.parametrize("context, message", [
    (_validation(match_typed_subject_alt_names=[_typed(SanType.URI, prefix="spiffe://cluster.local/")]),
     ".match_typed_subject_alt_names[0].matcher: prefix: a prefix SAN matcher is not supported (exact; "),
    (_validation(match_typed_subject_alt_names=[_typed(SanType.DNS, suffix=".example.com")]),
     ".match_typed_subject_alt_names[0].matcher: suffix: a suffix SAN matcher is not supported"),
    (_validation(match_subject_alt_names=[string_pb2.StringMatcher(
        safe_regex=regex_pb2.RegexMatcher(regex=".*"))]),
     ".match_subject_alt_names[0]: safe_regex: a safe_regex SAN matcher is not supported"),
    (_validation(match_subject_alt_names=[string_pb2.StringMatcher(contains="x")]),
     ".match_subject_alt_names[0]: contains: a contains SAN matcher is not supported"),
    (_validation(match_typed_subject_alt_names=[_typed(SanType.URI, exact="spiffe://td/ns/*/sa/x")]),
     ".match_typed_subject_alt_names[0].matcher: exact: 'spiffe://td/ns/*/sa/x' holds '*', which meshd would read "
     "as a wildcard"),
    (_validation(match_typed_subject_alt_names=[_typed(SanType.EMAIL, exact="a@b.c")]),
     ".match_typed_subject_alt_names[0]: san_type: EMAIL is not supported (DNS, URI)"),
    (_validation(match_typed_subject_alt_names=[_typed(SanType.URI, exact="a.example.com")]),
     ".match_typed_subject_alt_names[0].matcher: exact: 'a.example.com' is not a URI"),
    (_validation(match_typed_subject_alt_names=[_typed(SanType.DNS, exact=SPIFFE)]),
     f".match_typed_subject_alt_names[0].matcher: exact: '{SPIFFE}' is not a DNS name"),
    (_validation(match_typed_subject_alt_names=[_typed(SanType.URI, exact=SPIFFE, ignore_case=True)]),
     ".match_typed_subject_alt_names[0].matcher: ignore_case: is not supported for URI SANs"),
    (tls_pb2.UpstreamTlsContext(common_tls_context=common(validation_context=common_pb2.CertificateValidationContext(
        match_typed_subject_alt_names=[_typed(SanType.URI, exact=SPIFFE)]))),
     ": trusted_ca: missing (SAN matchers without a trusted CA verify nothing"),
    (_validation(verify_certificate_hash=["ab" * 32]), ": verify_certificate_hash: is not supported"),
    (_validation(verify_certificate_spki=["A" * 44]), ": verify_certificate_spki: is not supported"),
    (_validation(crl=base_pb2.DataSource(filename="/etc/crl.pem")), ": crl: is not supported"),
    (_validation(allow_expired_certificate=True), ": allow_expired_certificate: is not supported"),
    (_validation(trust_chain_verification=common_pb2.CertificateValidationContext.ACCEPT_UNTRUSTED),
     ": trust_chain_verification: ACCEPT_UNTRUSTED is not supported"),
    (_validation(max_verify_depth=wrappers_pb2.UInt32Value(value=2)), ": max_verify_depth: is not supported"),
    (_validation(trusted_ca=base_pb2.DataSource(filename="certs/ca.pem")),
     ".trusted_ca: filename: 'certs/ca.pem' is not an absolute path"),
    (_validation(trusted_ca=base_pb2.DataSource(environment_variable="CA")),
     ".trusted_ca: environment_variable: is not supported (filename, inline_bytes, inline_string)"),
    (_validation(trusted_ca=base_pb2.DataSource(inline_string="garbage")), ".trusted_ca.inline_string: not PEM"),
])
def test_validation_refusals(context, message):
    assert at + message in error(res.decode_cluster, with_socket(context))


def test_certificates_and_sds_refusals(pki, leaf):
    cert, key, _ = leaf
    other_key = Path(pki.leaf("other").key).read_bytes()
    expired = pki.leaf("expired", days=-1)
    prefix = f'cluster "{NAME}": transport_socket.typed_config.common_tls_context'
    two = build.upstream_context(cert_sds="a")
    two.common_tls_context.tls_certificate_sds_secret_configs.append(build.sds("b"))
    cases = [
        (two, prefix + ": tls_certificates: 2 certificates; a client presents one"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(tls_certificate_sds_secret_configs=[
            secret_pb2.SdsSecretConfig(name="default", sds_config=config_source_pb2.ConfigSource(
                api_config_source=config_source_pb2.ApiConfigSource()))])),
         prefix + ".tls_certificate_sds_secret_configs[0](default).sds_config: config source api_config_source "
                  "is not supported (only ads or self)"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(tls_certificate_sds_secret_configs=[
            secret_pb2.SdsSecretConfig(name="default")])),
         prefix + ".tls_certificate_sds_secret_configs[0](default): sds_config: missing (a static secret"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(validation_context_sds_secret_config=
                                                              secret_pb2.SdsSecretConfig(name="ROOTCA"))),
         prefix + ".validation_context_sds_secret_config: sds_config: missing"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(tls_certificates=[common_pb2.TlsCertificate(
            certificate_chain=inline(cert), private_key=inline(other_key))])),
         prefix + ".tls_certificates[0]: private_key: does not belong to the certificate_chain's first certificate"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(tls_certificates=[common_pb2.TlsCertificate(
            certificate_chain=inline(Path(expired.cert).read_bytes()), private_key=inline(key))])),
         prefix + ".tls_certificates[0].certificate_chain.inline_bytes: the certificate (serial"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(tls_certificates=[common_pb2.TlsCertificate(
            certificate_chain=inline(cert), private_key=inline(b"-----BEGIN PRIVATE KEY-----\nxx\n"))])),
         prefix + ".tls_certificates[0].private_key.inline_bytes: not an unencrypted PEM private key"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(tls_certificates=[common_pb2.TlsCertificate(
            pkcs12=inline(b"x"))])), prefix + ".tls_certificates[0]: pkcs12: is not supported"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(tls_certificates=[common_pb2.TlsCertificate(
            certificate_chain=inline(cert))])), prefix + ".tls_certificates[0]: private_key: missing"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(
            tls_certificate_provider_instance=common_pb2.CertificateProviderPluginInstance(instance_name="default"))),
         prefix + ": tls_certificate_provider_instance: is not supported"),
        (tls_pb2.UpstreamTlsContext(common_tls_context=common(
            validation_context_certificate_provider_instance=tls_pb2.CommonTlsContext.CertificateProviderInstance(
                instance_name="default"))),
         prefix + ".validation_context_certificate_provider_instance: is not supported (validation_context"),
        (tls_pb2.UpstreamTlsContext(auto_host_sni=True), 'transport_socket.typed_config: auto_host_sni: is not '
                                                         'supported'),
        (tls_pb2.UpstreamTlsContext(auto_sni_san_validation=True), "auto_sni_san_validation: is not supported"),
    ]
    for context, message in cases:
        assert message in error(res.decode_cluster, with_socket(context)), message
    assert "BEGIN" not in error(res.decode_cluster, with_socket(cases[6][0]))


def test_combined_validation_context_needs_its_sds_secret():
    context = build.upstream_context(cert_sds="default", ca_sds="ROOTCA", sans=[SPIFFE])
    assert cluster_tls(with_socket(context))["ca"] == Pem(SDS, "ROOTCA", "ca")
    context.common_tls_context.combined_validation_context.ClearField("validation_context_sds_secret_config")
    assert "combined_validation_context: validation_context_sds_secret_config: missing" in error(
        res.decode_cluster, with_socket(context))


# -- listeners -------------------------------------------------------------------------------------------
def listener(*chains, default=None):
    lis = build.socket_listener("0.0.0.0_8443", "0.0.0.0", 8443, *chains)
    if default is not None:
        lis.default_filter_chain.CopyFrom(default)
    return lis


def listener_tls(lis) -> dict:
    decoded = res.decode_listener(pack(lis))
    meshd_config.ListenerTls.model_validate(xtls.resolve(decoded.tls, paths))
    return xtls.resolve(decoded.tls, lambda pem: pem)


def test_downstream_tls_of_one_chain():
    context = build.downstream_context(cert_sds=["server"], client_ca_sds="ROOTCA", sans=[SPIFFE],
                                       require_client=True, alpn=["h2", "http/1.1"], min_version=Params.TLSv1_3)
    context.common_tls_context.tls_params.cipher_suites.append("ECDHE-ECDSA-AES128-GCM-SHA256")   # ignored
    got = listener_tls(listener(build.filter_chain("8443", context=context)))
    assert got == {"certificates": [{"cert": Pem(SDS, "server", "cert"), "key": Pem(SDS, "server", "key")}],
                   "client_ca": Pem(SDS, "ROOTCA", "ca"), "require_client_cert": True, "allowed_sans": [SPIFFE],
                   "min_version": "1.3", "alpn": ["h2", "http/1.1"]}
    assert res.decode_listener(pack(listener(build.filter_chain("8443", context=context)))).secret_names == {
        "server", "ROOTCA"}
    assert res.decode_listener(pack(listener(build.filter_chain("8443")))).tls is None


def test_chains_that_differ_by_server_names_give_several_certificates():
    def chain(cert: str, names=(), ca: str = "ROOTCA", name: str = ""):
        return build.filter_chain("8443", context=build.downstream_context(cert_sds=[cert], client_ca_sds=ca),
                                  server_names=names, name=name)
    got = listener_tls(listener(chain("a", ["a.example.com"]), chain("b", ["b.example.com", "*.b.example.com"]),
                                chain("fallback")))
    assert [c["cert"].ref for c in got["certificates"]] == ["fallback", "a", "b"]     # the catch-all first
    got = listener_tls(listener(chain("a", ["a.example.com"]), default=chain("fallback")))
    assert [c["cert"].ref for c in got["certificates"]] == ["fallback", "a"]
    prefix = 'listener "0.0.0.0_8443": '
    cases = [
        (listener(chain("a", ["a.example.com"]), chain("b", ["b.example.com"], ca="OTHER")),
         prefix + "filter_chains[1]: transport_socket: its client_ca differs from filter_chains[0]'s (meshd has one "
                  "TLS setting per listener; only the certificates may differ, chosen by SNI)"),
        (listener(chain("a", ["a.example.com"]), chain("b", ["A.example.com"])),
         prefix + "filter_chains[1]: filter_chain_match.server_names: 'A.example.com' is matched by filter_chains[0] "
                  "too"),
        (listener(chain("a"), chain("b", name="second")),
         prefix + "filter_chains[1](second): a second chain for every server name (after filter_chains[0]) is not "
                  "supported"),
        (listener(chain("a", ["a.example.com"]), build.filter_chain("8443", name="plain")),
         prefix + "filter_chains[1](plain): a plaintext filter chain next to TLS ones (filter_chains[0]) is not "
                  "supported"),
    ]
    port = chain("b", ["b.example.com"])
    port.filter_chain_match.destination_port.value = 8443
    cases.append((listener(chain("a", ["a.example.com"]), port),
                  prefix + "filter_chains[1]: filter_chain_match.destination_port: differs from filter_chains[0]'s "
                           "(meshd tells TLS chains apart by server_names only)"))
    raw = chain("a")
    raw.filter_chain_match.transport_protocol = "raw_buffer"
    cases.append((listener(raw), prefix + "filter_chains[0]: filter_chain_match.transport_protocol: 'raw_buffer' on "
                                          "a TLS chain"))
    for lis, message in cases:
        assert error(res.decode_listener, lis).startswith(message), message


@pytest.mark.parametrize("change, message", [
    (lambda ctx: ctx.require_sni.CopyFrom(wrappers_pb2.BoolValue(value=True)), ": require_sni: is not supported"),
    (lambda ctx: setattr(ctx, "ocsp_staple_policy", tls_pb2.DownstreamTlsContext.MUST_STAPLE),
     ": ocsp_staple_policy: MUST_STAPLE is not supported"),
    (lambda ctx: ctx.common_tls_context.ClearField("tls_certificate_sds_secret_configs"),
     ".common_tls_context: no certificate (tls_certificates or tls_certificate_sds_secret_configs)"),
    (lambda ctx: ctx.require_client_certificate.CopyFrom(wrappers_pb2.BoolValue(value=True)),
     ": require_client_certificate: needs a validation context with a trusted_ca"),
    (lambda ctx: ctx.common_tls_context.validation_context.system_root_certs.SetInParent(),
     ".common_tls_context.validation_context: system_root_certs: is not supported here"),
])
def test_downstream_refusals(change, message):
    context = build.downstream_context(cert_sds=["server"])
    change(context)
    assert f"filter_chains[0].transport_socket.typed_config{message}" in error(
        res.decode_listener, listener(build.filter_chain("8443", context=context)))


# -- secrets ---------------------------------------------------------------------------------------------
def test_secrets(pki, leaf):
    cert, key, made = leaf
    secret = res.DECODERS[res.SECRET_TYPE](pack(build.certificate_secret("default", cert, key)))
    assert (secret.name, secret.type, dict(secret.parts)) == (
        "default", "tls_certificate", {"cert": Pem(INLINE, "", "cert", cert), "key": Pem(INLINE, "", "key", key)})
    assert "PRIVATE" not in repr(secret)
    ca = res.decode_secret(pack(build.ca_secret("ROOTCA", Path(pki.ca_path).read_bytes())))
    assert (ca.type, list(ca.parts)) == ("validation_context", ["ca"])
    by_file = res.decode_secret(pack(secret_pb2.Secret(name="file-cert", tls_certificate=common_pb2.TlsCertificate(
        certificate_chain=base_pb2.DataSource(filename=made.cert),
        private_key=base_pb2.DataSource(filename=made.key)))))
    assert by_file.parts["cert"] == Pem(FILE, made.cert, "cert")


@pytest.mark.parametrize("secret, message", [
    (secret_pb2.Secret(name="s"), 'secret "s": type: missing (tls_certificate, validation_context)'),
    (secret_pb2.Secret(name="s", generic_secret=secret_pb2.GenericSecret()),
     'secret "s": generic_secret: a generic_secret secret is not supported (tls_certificate, validation_context)'),
    (secret_pb2.Secret(name="s", session_ticket_keys=common_pb2.TlsSessionTicketKeys(keys=[inline(b"k" * 80)])),
     'secret "s": session_ticket_keys: a session_ticket_keys secret is not supported'),
    (secret_pb2.Secret(name="s", validation_context=common_pb2.CertificateValidationContext()),
     'secret "s": validation_context: trusted_ca: missing'),
    (secret_pb2.Secret(name="s", validation_context=common_pb2.CertificateValidationContext(
        trusted_ca=inline(b"x"), match_typed_subject_alt_names=[_typed(SanType.URI, exact=SPIFFE)])),
     'secret "s": validation_context.trusted_ca.inline_bytes: not PEM certificates'),
    (secret_pb2.Secret(name="", tls_certificate=common_pb2.TlsCertificate()), 'secret "": name: must not be empty'),
])
def test_secret_refusals(secret, message):
    assert error(res.decode_secret, secret).startswith(message)


def test_secret_refusals_of_material(pki, leaf):
    cert, key, _ = leaf
    ca = Path(pki.ca_path).read_bytes()
    sans = build.ca_secret("s", ca)
    sans.validation_context.match_typed_subject_alt_names.extend([_typed(SanType.URI, exact=SPIFFE)])
    assert "validation_context: match_typed_subject_alt_names: SAN matchers in a Secret are not supported" in error(
        res.decode_secret, sans)
    mismatched = build.certificate_secret("s", cert, Path(pki.leaf("x").key).read_bytes())
    assert error(res.decode_secret, mismatched) == (
        'secret "s": tls_certificate: private_key: does not belong to the certificate_chain\'s first certificate')
    with pytest.raises(ResourceError, match="does not decode"):
        res.decode_secret(any_pb2.Any(type_url=res.SECRET_TYPE, value=b"\xff\xff"))
    with pytest.raises(ResourceError, match="is not"):
        res.decode_secret(pack(istio.eds_cluster(NAME)))


# -- helpers ---------------------------------------------------------------------------------------------
def test_pems_resolve_and_names():
    a, b = Pem(SDS, "a", "cert"), Pem(FILE, "/x", "ca")
    value = res.decode_cluster(pack(build.istio_mutual(istio.eds_cluster(NAME), sni="s", sans=[SPIFFE]))).settings
    assert xtls.pems(value["tls"]) == [Pem(SDS, "default", "cert"), Pem(SDS, "default", "key"),
                                       Pem(SDS, "ROOTCA", "ca")]
    assert xtls.pems({"x": [a, {"y": a}], "z": (b,)}) == [a, b]
    assert xtls.resolve({"x": (a, 1), "y": {"z": b}}, lambda pem: pem.ref) == {"x": ["a", 1], "y": {"z": "/x"}}
    assert xtls.secret_names({"x": [a, b]}) == {"a"}
