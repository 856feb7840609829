"""The xDS source (discovery.xds.source.XdsSource) against the ADS test control plane (integration.xds.server) on one
loop, SotW and Delta: clusters and listeners with TLS, their SDS secrets on the same stream written as private PEM
files that the published settings name, warming until the secrets are there, rotation by a Secret update, NACKs of
secrets that do not fit, Istio's ``transport_socket_matches``, and unsubscribing what nothing references."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from discovery.model import ClusterModel
from discovery.xds.source import XdsSource
from discovery.xds.transport import SECRET
from integration.certs import TestPKI
from integration.xds import istio
from integration.xds import tls as build
from integration.xds.server import AdsServer
from integration.xds.snapshot import CLUSTER, LISTENER
from meshd import config as meshd_config

HOST = "reviews.default.svc.cluster.local"
NAME = istio.cluster_name("outbound", 9080, "", HOST)
SPIFFE = "spiffe://cluster.local/ns/default/sa/"
VARIANTS = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])


class Mesh:
    """A started source and server, what the source published, and waits."""

    def __init__(self, server: AdsServer, source: XdsSource, model: ClusterModel, pki: TestPKI) -> None:
        self.server, self.source, self.model, self.pki = server, source, model, pki
        self.listener_specs: dict[str, Any] = {}

    async def until(self, predicate: Callable[[], Any], what: str, timeout: float = 5.0) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            if loop.time() > deadline:
                raise AssertionError(f"no {what} within {timeout}s: status={self.source.status()}")
            await asyncio.sleep(0.01)
        return result

    def tls(self, cluster: str = NAME) -> dict | None:
        settings = self.model.settings(cluster)
        return None if settings is None else settings.get("tls")

    def pem(self, name: str) -> tuple[bytes, bytes]:
        leaf = self.pki.leaf(name, uri=[SPIFFE + name])
        return Path(leaf.cert).read_bytes(), Path(leaf.key).read_bytes()


def run(scenario: Callable[[Mesh], Awaitable[None]], tmp_path: Path, delta: bool, **kwargs: Any) -> None:
    async def main() -> None:
        server = await AdsServer().start()
        model = ClusterModel()
        mesh = Mesh(server, None, model, TestPKI(tmp_path / "pki"))   # type: ignore[arg-type]

        def publish(source: str, specs: Any) -> None:
            mesh.listener_specs.update(specs)
        source = XdsSource("istio", server.address, node_id=istio.sidecar_node_id(), delta=delta,
                           initial_fetch_timeout=3.0, secrets_dir=str(tmp_path / "istio-secrets"),
                           publish_listeners=publish, **kwargs)
        mesh.source = source
        await source.start(model)
        try:
            await asyncio.wait_for(scenario(mesh), 20)
        finally:
            await source.stop()
            await server.stop()
    asyncio.run(main())


def tls_cluster(secret: str = "default") -> Any:
    cluster = istio.eds_cluster(NAME)
    cluster.transport_socket.CopyFrom(build.tls_socket(build.upstream_context(
        sni="reviews.example.com", cert_sds=secret, ca_sds="ROOTCA", sans=[SPIFFE + "reviews"])))
    return cluster


def assignment(*endpoints: Any) -> Any:
    return istio.load_assignment(NAME, istio.locality(list(endpoints) or [istio.lb_endpoint("127.0.0.1", 9080)]))


def private(path: str) -> bool:
    return stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) \
        == 0o700


@VARIANTS
def test_a_cluster_warms_until_its_sds_secrets_arrive_then_names_their_files(tmp_path, delta):
    async def scenario(mesh: Mesh) -> None:
        mesh.server.upsert(tls_cluster(), assignment())
        await mesh.server.wait_ack(CLUSTER, "1")
        request = await mesh.server.wait_request(lambda r: r.type_url == SECRET and r.resource_names, what="SDS")
        assert sorted(request.resource_names) == ["ROOTCA", "default"]    # exactly what the cluster names
        await asyncio.sleep(0.2)
        assert mesh.model.cluster(NAME) is None, "not published before its secrets"
        assert mesh.source.status()["warming"] == {"clusters": {NAME: ["ROOTCA", "default"]}}
        assert mesh.source.synced == delta    # Delta says at once that they do not exist; SotW waits 3 s to know

        cert, key = mesh.pem("one")
        ca = Path(mesh.pki.ca_path).read_bytes()
        mesh.server.upsert(build.certificate_secret("default", cert, key), build.ca_secret("ROOTCA", ca))
        tls = await mesh.until(mesh.tls, "the cluster with its TLS")
        assert Path(tls["cert"]).read_bytes() == cert and Path(tls["key"]).read_bytes() == key
        assert Path(tls["ca"]).read_bytes() == ca and all(private(tls[p]) for p in ("cert", "key", "ca"))
        assert {k: v for k, v in tls.items() if k not in ("cert", "key", "ca")} == {
            "sni": "reviews.example.com", "verify_san": [SPIFFE + "reviews"]}
        meshd_config.ClusterConfig.model_validate({**mesh.model.settings(NAME), "name": NAME})
        assert mesh.source.status()["warming"] == {} and mesh.source.synced
        dump = mesh.source.config_dump()
        assert dump["sds"]["default"]["files"] == {"cert": tls["cert"], "key": tls["key"]}
        assert dump["sds"]["ROOTCA"]["type"] == "validation_context"
        text = json.dumps(dump) + json.dumps(mesh.source.status()) + repr(mesh.source.secrets)
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text

        new_cert, new_key = mesh.pem("two")                                   # rotation: same paths, new bytes
        mesh.server.upsert(build.certificate_secret("default", new_cert, new_key))
        await mesh.until(lambda: Path(tls["cert"]).read_bytes() == new_cert, "the rewritten certificate")
        assert Path(tls["key"]).read_bytes() == new_key and mesh.tls() == tls and private(tls["key"])
    run(scenario, tmp_path, delta)


@VARIANTS
def test_a_version_in_force_stays_while_the_next_one_warms(tmp_path, delta):
    async def scenario(mesh: Mesh) -> None:
        cert, key = mesh.pem("one")
        mesh.server.upsert(tls_cluster(), assignment(), build.certificate_secret("default", cert, key),
                           build.ca_secret("ROOTCA", Path(mesh.pki.ca_path).read_bytes()))
        first = await mesh.until(mesh.tls, "the first version")
        mesh.server.upsert(tls_cluster("next"), assignment(istio.lb_endpoint("127.0.0.2", 9080)))
        await mesh.until(lambda: {e.address for e in mesh.model.cluster(NAME).endpoints.values()} == {"127.0.0.2:9080"},
                         "new endpoints on the version in force")
        assert mesh.tls() == first and mesh.source.status()["warming"] == {"clusters": {NAME: ["next"]}}
        other_cert, other_key = mesh.pem("next")
        mesh.server.upsert(build.certificate_secret("next", other_cert, other_key))
        await mesh.until(lambda: mesh.tls() != first, "the next version in force")
        assert Path(mesh.tls()["cert"]).read_bytes() == other_cert
        await mesh.until(lambda: not os.path.exists(first["cert"]), "the old secret's files removed")
        def unsubscribed(r: Any) -> bool:     # SotW: the full list without it; Delta: an unsubscribe
            return r.type_url == SECRET and (r.unsubscribed == ("default",) if delta else
                                             sorted(r.resource_names) == ["ROOTCA", "next"])
        await mesh.server.wait_request(unsubscribed, what="SDS without default")
        assert "default" not in mesh.source.secrets
        mesh.server.replace(CLUSTER, [])                                      # nothing references a secret
        await mesh.until(lambda: mesh.model.cluster(NAME) is None, "the cluster removed")
        await mesh.until(lambda: not os.listdir(tmp_path / "istio-secrets"), "every file removed")
    run(scenario, tmp_path, delta)


@VARIANTS
def test_secrets_that_do_not_fit_are_nacked_naming_them(tmp_path, delta):
    async def scenario(mesh: Mesh) -> None:
        ca = Path(mesh.pki.ca_path).read_bytes()
        mesh.server.upsert(tls_cluster(), assignment(), build.ca_secret("ROOTCA", ca))
        await mesh.until(lambda: "ROOTCA" in mesh.source.secrets, "ROOTCA")
        # (alone: a NACK rejects the whole response, and a Delta server does not resend what it NACKed)
        mesh.server.upsert(build.ca_secret("default", ca))
        nack = await mesh.server.wait_nack(SECRET)
        assert 'secret "default": a validation_context, but cluster "' + NAME + '" needs a tls_certificate' \
            in nack.error_detail
        assert mesh.model.cluster(NAME) is None
        cert, _ = mesh.pem("one")
        _, other_key = mesh.pem("other")
        mark = len(mesh.server.log.requests)
        mesh.server.upsert(build.certificate_secret("default", cert, other_key))
        nack = await mesh.server.wait_nack(SECRET, since=mark)
        assert 'secret "default": tls_certificate: private_key: does not belong to the certificate_chain' \
            in nack.error_detail and "PRIVATE" not in nack.error_detail
        good_cert, good_key = mesh.pem("good")
        mesh.server.upsert(build.certificate_secret("default", good_cert, good_key))
        await mesh.until(mesh.tls, "the cluster once the secret fits")
    run(scenario, tmp_path, delta)


def test_a_cluster_naming_an_accepted_secret_of_the_wrong_type_is_nacked(tmp_path):
    async def scenario(mesh: Mesh) -> None:
        cert, key = mesh.pem("one")
        mesh.server.upsert(tls_cluster(), assignment(), build.certificate_secret("default", cert, key),
                           build.ca_secret("ROOTCA", Path(mesh.pki.ca_path).read_bytes()))
        await mesh.until(mesh.tls, "the cluster")
        wrong = tls_cluster()
        wrong.name = "other"
        wrong.eds_cluster_config.service_name = "other"
        wrong.transport_socket.CopyFrom(build.tls_socket(build.upstream_context(ca_sds="default")))
        mesh.server.upsert(wrong)
        nack = await mesh.server.wait_nack(CLUSTER)
        assert nack.error_detail == ('cluster "other": tls: secret "default" is a tls_certificate, not the '
                                     'validation_context its ca needs')
        ctx = build.upstream_context()
        ctx.common_tls_context.validation_context.trusted_ca.filename = str(tmp_path / "absent.pem")
        missing = tls_cluster()
        missing.transport_socket.CopyFrom(build.tls_socket(ctx))
        mark = len(mesh.server.log.requests)
        mesh.server.apply(replace={CLUSTER: [missing]})
        nack = await mesh.server.wait_nack(CLUSTER, since=mark)
        assert f'tls: {tmp_path / "absent.pem"}: unreadable' in nack.error_detail
    run(scenario, tmp_path, False)


@VARIANTS
def test_istio_transport_socket_matches_dial_the_marked_endpoints_with_tls(tmp_path, delta):
    async def scenario(mesh: Mesh) -> None:
        cert, key = mesh.pem("one")
        cluster = build.istio_mutual(istio.eds_cluster(NAME), sni=build.istio_sni(9080, "", HOST),
                                     sans=[SPIFFE + "reviews"])
        mesh.server.upsert(cluster, assignment(istio.lb_endpoint("127.0.0.1", 9080, tls_mode="istio"),
                                               istio.lb_endpoint("127.0.0.2", 9080)),
                           build.certificate_secret("default", cert, key),
                           build.ca_secret("ROOTCA", Path(mesh.pki.ca_path).read_bytes()))
        tls = await mesh.until(mesh.tls, "the Istio cluster")
        assert (tls["endpoints"], tls["marker"], tls["alpn"]) == (
            "marked", {"envoy.transport_socket_match.tlsMode": "istio"}, ["istio-peer-exchange", "istio"])
        marked = {e.address: all(e.metadata.get(k) == v for k, v in tls["marker"].items())
                  for e in mesh.model.cluster(NAME).endpoints.values()}
        assert marked == {"127.0.0.1:9080": True, "127.0.0.2:9080": False}
        meshd_config.ClusterConfig.model_validate({**mesh.model.settings(NAME), "name": NAME})
    run(scenario, tmp_path, delta)


@VARIANTS
def test_a_listener_with_a_downstream_tls_context(tmp_path, delta):
    async def scenario(mesh: Mesh) -> None:
        name = "0.0.0.0_8443"
        context = build.downstream_context(cert_sds=["server"], client_ca_sds="ROOTCA", sans=[SPIFFE + "app"],
                                           require_client=True)
        mesh.server.upsert(build.socket_listener(name, "0.0.0.0", 8443, build.filter_chain("8443", context=context)))
        await mesh.server.wait_ack(LISTENER, "1")
        await mesh.server.wait_request(lambda r: r.type_url == SECRET and r.resource_names, what="SDS")
        await asyncio.sleep(0.2)
        assert mesh.listener_specs == {} and mesh.source.status()["warming"] == {
            "listeners": {name: ["ROOTCA", "server"]}}
        cert, key = mesh.pem("server")
        ca = Path(mesh.pki.ca_path).read_bytes()
        mesh.server.upsert(build.certificate_secret("server", cert, key), build.ca_secret("ROOTCA", ca))
        spec = await mesh.until(lambda: mesh.listener_specs.get(f"istio:{name}"), "the listener published")
        tls = spec["tls"]
        assert [Path(tls["certificates"][0][p]).read_bytes() for p in ("cert", "key")] == [cert, key]
        assert Path(tls["client_ca"]).read_bytes() == ca
        assert (tls["require_client_cert"], tls["allowed_sans"]) == (True, [SPIFFE + "app"])
        meshd_config.ListenerConfig.model_validate(spec)
        published = dict(mesh.listener_specs)
        new_cert, new_key = mesh.pem("server-2")                              # rotation: the files, not the spec
        mesh.server.upsert(build.certificate_secret("server", new_cert, new_key))
        await mesh.until(lambda: Path(tls["certificates"][0]["cert"]).read_bytes() == new_cert, "the new certificate")
        assert mesh.listener_specs == published
    run(scenario, tmp_path, delta, resources=("clusters", "endpoints", "routes", "listeners"))
