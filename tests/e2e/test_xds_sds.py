"""End to end: ``meshd run`` A takes an mTLS cluster from the ADS test control plane, its certificate and CA by SDS on
the same stream, and dials ``meshd run`` B, which terminates TLS (static config: client CA, allowed SANs) in front of
an HTTP backend. Requests through A succeed; then A's client certificate is rotated by an SDS update under steady
load, B stops trusting the old certificate's CA, and requests still succeed: B sees the new certificate."""

from __future__ import annotations

import http.client
import json
import os
import stat
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509
from google.protobuf import wrappers_pb2

from integration.certs import TestPKI
from integration.xds import istio
from integration.xds import tls as build
from tests.e2e.test_tls import http_tls_config

SPIFFE = "spiffe://cluster.local/ns/default/sa/"
HOST = "b.default.svc.cluster.local"
CLUSTER = istio.cluster_name("outbound", 8443, "", HOST)
ROUTES = "8080"
NODE_ID = istio.sidecar_node_id("127.0.0.1", "a-1", "default")


def eventually(predicate, what: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def get(port: int) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/x", headers={"Host": HOST})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(body)["server"] if resp.status == 200 and body.startswith(b"{") else ""


def serial(cert_path: str) -> str:
    return format(x509.load_pem_x509_certificate(Path(cert_path).read_bytes()).serial_number, "x")


def cluster_certs(m, name: str) -> dict:
    return next(t for t in m.admin_json("/certs")["tls"] if t["name"] == name)


@pytest.fixture
def pkis(tmp_path) -> tuple[TestPKI, TestPKI]:
    return TestPKI(tmp_path / "pki"), TestPKI(tmp_path / "pki-2", name="meshd-test-ca-2")


def test_a_cluster_whose_tls_comes_by_sds_dials_a_tls_meshd_and_rotates_its_certificate(
        meshd_run, xds_server, http_backend, pkis, tmp_path):
    pki, pki2 = pkis
    backend = http_backend("behind-b")
    b_leaf = pki.leaf("b", dns=["b.example.com"], uri=[SPIFFE + "b"])
    clients_ca = tmp_path / "live" / "clients-ca.pem"                 # B trusts both CAs for now
    clients_ca.parent.mkdir()
    clients_ca.write_bytes(Path(pki.ca_path).read_bytes() + Path(pki2.ca_path).read_bytes())
    b = meshd_run(http_tls_config(backend.address, {
        "certificates": [{"cert": b_leaf.cert, "key": b_leaf.key}], "client_ca": str(clients_ca),
        "require_client_cert": True, "allowed_sans": [SPIFFE + "a"]}), name="b")

    first = pki.leaf("a-1", uri=[SPIFFE + "a"])
    cluster = istio.eds_cluster(CLUSTER)
    cluster.max_requests_per_connection.CopyFrom(wrappers_pb2.UInt32Value(value=1))   # a handshake per request
    cluster.transport_socket.CopyFrom(build.tls_socket(build.upstream_context(
        sni="b.example.com", cert_sds="default", ca_sds="ROOTCA", sans=[SPIFFE + "b"])))
    xds_server.apply(upsert=[
        cluster, istio.load_assignment(CLUSTER, istio.locality([istio.lb_endpoint("127.0.0.1", b.port("https"))])),
        istio.route_config(ROUTES, istio.virtual_host("all", ["*"], [istio.route(cluster=CLUSTER)])),
        build.certificate_secret("default", Path(first.cert).read_bytes(), Path(first.key).read_bytes()),
        build.ca_secret("ROOTCA", Path(pki.ca_path).read_bytes())])
    a = meshd_run({"listeners": [{"name": "http", "address": "127.0.0.1:0", "protocol": "http",
                                  "route_config": {"xds": "istio", "name": ROUTES}}],
                   "discovery": [{"type": "xds", "name": "istio", "server": xds_server.address,
                                  "initial_fetch_timeout": "3s", "node": {"id": NODE_ID}}],
                   "access_log": {"path": None}}, name="a")
    port = a.port("http")
    assert eventually(lambda: get(port) == (200, "behind-b"), "a request through A and B")

    tls = next(c for c in a.admin_json("/clusters")["clusters"] if c["name"] == CLUSTER)
    secrets_dir = tmp_path / ".meshd" / "istio-secrets"
    assert stat.S_IMODE(os.stat(secrets_dir).st_mode) == 0o700 and tls["name"] == CLUSTER
    in_force = cluster_certs(a, f"cluster:{CLUSTER}")
    assert [c["serial"] for c in in_force["certificates"]] == [serial(first.cert)]
    key_file = next(f for f in in_force["files"] if f.endswith(".key.pem"))
    assert Path(key_file).parent == secrets_dir and stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    dump = a.admin("/config_dump")[1]
    assert "PRIVATE KEY" not in dump and key_file in dump
    assert cluster_certs(b, "listener:https")["certificates"][0]["serial"] == serial(b_leaf.cert)

    results: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            results.append(get(port)[0])
            time.sleep(0.005)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        eventually(lambda: len(results) > 20, "steady load")
        second = pki2.leaf("a-2", uri=[SPIFFE + "a"])                 # issued by the other CA
        xds_server.upsert(build.certificate_secret("default", Path(second.cert).read_bytes(),
                                                   Path(second.key).read_bytes()))
        eventually(lambda: [c["serial"] for c in cluster_certs(a, f"cluster:{CLUSTER}")["certificates"]]
                   == [serial(second.cert)], "A's new certificate in force", timeout=5)
        assert Path(key_file).read_bytes() == Path(second.key).read_bytes(), "the same file, rewritten"
        temp = tmp_path / "live" / "clients-ca.tmp"                    # B now trusts only the new CA
        temp.write_bytes(Path(pki2.ca_path).read_bytes())
        os.replace(temp, clients_ca)
        eventually(lambda: len(cluster_certs(b, "listener:https")["ca"]) == 1, "B's client CA reloaded")
        seen = len(results)
        eventually(lambda: len(results) > seen + 30, "requests after B dropped the old CA")
    finally:
        stop.set()
        thread.join(10)
    assert set(results) == {200}, Counter(results)
    assert get(port) == (200, "behind-b"), "B accepts A's handshake: it is the new certificate"
    errors = b.admin_json("/certs")["handshake_errors"]
    assert errors == [], errors
