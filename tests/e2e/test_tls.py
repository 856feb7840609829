"""End to end TLS with clients nobody here wrote: curl and ``openssl s_client`` (SNI, mTLS), Python ``ssl`` carrying
Dubbo and Bolt frames, apache-dubbo-js through a plaintext→TLS egress (meshd originates TLS to a meshd that
terminates it in front of the provider), rejected peers counted by reason, and rotation under steady load."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from integration import peers
from integration.certs import TestPKI
from integration.load import SteadyLoad
from integration.process import MeshdError
from meshd.codec import bolt, dubbo
from meshd.codec.base import NEED_DATA
from tests.e2e.test_zookeeper_discovery import zk_root, zk_server, zk_writer  # noqa: F401 - fixtures

SPIFFE = "spiffe://cluster.local/ns/default/sa/"
IFACE = "org.example.DemoService"
CALC = "com.example.Calc"
TYPES = ["java.lang.String", "int"]


@pytest.fixture
def pki(tmp_path) -> TestPKI:
    return TestPKI(tmp_path / "pki")


def http_tls_config(backend: str, tls: dict) -> dict:
    return {"listeners": [{"name": "https", "address": "127.0.0.1:0", "protocol": "http", "route_config": "main",
                           "tls": tls}],
            "route_configs": [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": {"prefix": "/"}, "route": {"cluster": "backend"}}]}]}],
            "clusters": [{"name": "backend", "endpoints": [{"address": backend}]}], "access_log": {"path": None}}


def curl(port: int, name: str, ca: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", ca, "--resolve", f"{name}:{port}:127.0.0.1",
                           "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}", *extra,
                           f"https://{name}:{port}/x"], capture_output=True, text=True, timeout=15)


def served_serial(port: int, name: str) -> str:
    """The serial of the certificate meshd presents for SNI ``name`` (openssl s_client, then openssl x509)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name],
                         input="", capture_output=True, text=True, timeout=15).stdout
    pem = out[out.index("-----BEGIN CERTIFICATE-----"):out.index("-----END CERTIFICATE-----") + 25]
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, text=True,
                            timeout=15).stdout
    return serial.strip().partition("=")[2].lower().lstrip("0")


def handshake_errors(m) -> dict:
    return {(e["listener"], e["reason"]): e["count"] for e in m.admin_json("/certs")["handshake_errors"]}


def test_sni_selection_and_mtls_with_curl_and_openssl(meshd_run, http_backend, pki):
    backend = http_backend("b")
    a, b = pki.leaf("a", dns=["a.example.com"]), pki.leaf("b", dns=["b.example.com"])
    wild = pki.leaf("wild", dns=["*.svc.example.com"])
    client = pki.leaf("client", uri=[SPIFFE + "client"])
    stranger = pki.leaf("stranger", uri=["spiffe://other.domain/ns/x/sa/y"])
    m = meshd_run(http_tls_config(backend.address, {
        "certificates": [{"cert": c.cert, "key": c.key} for c in (a, b, wild)],
        "client_ca": pki.ca_path, "require_client_cert": True, "allowed_sans": [SPIFFE + "*"]}))
    port = m.port("https")
    certs = {c["file"]: c for c in m.admin_json("/certs")["tls"][0]["certificates"]}
    serial = {leaf.name: certs[leaf.cert]["serial"].lstrip("0") for leaf in (a, b, wild)}
    assert certs[a.cert]["sans"] == ["DNS:a.example.com"] and certs[a.cert]["expires_in_s"] > 3600

    for name, leaf in (("a.example.com", "a"), ("b.example.com", "b"), ("x.svc.example.com", "wild"),
                       ("unknown.org", "a")):
        assert served_serial(port, name) == serial[leaf], name        # exact, wildcard, then the first

    ok = curl(port, "b.example.com", pki.ca_path, "--cert", client.cert, "--key", client.key)
    assert ok.stdout == "200 0", ok.stderr
    assert curl(port, "b.example.com", pki.ca_path).returncode != 0                         # no client certificate
    assert curl(port, "b.example.com", pki.ca_path, "--cert", stranger.cert, "--key", stranger.key).stdout \
        .startswith("000")                                                                  # verified, not allowed
    rogue = pki.self_signed("rogue", uri=[SPIFFE + "client"])
    assert curl(port, "b.example.com", pki.ca_path, "--cert", rogue.cert, "--key", rogue.key).returncode != 0
    old = pki.leaf("old", uri=[SPIFFE + "client"], days=-1)
    assert curl(port, "b.example.com", pki.ca_path, "--cert", old.cert, "--key", old.key).returncode != 0
    time.sleep(0.3)
    errors = handshake_errors(m)
    for reason in ("no_client_cert", "san_not_allowed", "cert_expired"):
        assert errors.get(("https", reason), 0) >= 1, (reason, errors)
    assert sum(n for (_, r), n in errors.items() if r in ("unknown_ca", "self_signed", "cert_verify_failed")) >= 1
    text = m.admin("/stats/prometheus")[1]
    assert 'meshd_tls_handshake_errors_total{listener="https",reason="no_client_cert"}' in text
    assert 'meshd_tls_cert_expiry_seconds{' in text
    assert json.loads(m.admin("/listeners")[1])["listeners"][0]["tls"] is True


def _frames(sock: ssl.SSLSocket, decoder, want: int) -> list:
    events = []
    while len(events) < want:
        data = sock.recv(65536)
        assert data, "closed"
        decoder.receive_data(data)
        while (event := decoder.next_event()) is not NEED_DATA:
            events.append(event)
    return events


@pytest.mark.skipif(not peers.installed(), reason=peers.missing_reason() or "peers not installed")
def test_dubbo_and_bolt_frames_over_python_ssl_on_an_auto_listener(meshd_run, pki):
    dubbo_node, dubbo_port = peers.start_server("dubbo_provider.js", "--port", "0", "--server-id", "d")
    bolt_node, bolt_port = peers.start_server("bolt_server.js", "--port", "0", "--server-id", "b", "--interface", CALC)
    try:
        server = pki.leaf("server", dns=["mesh.example.com"])
        client = pki.leaf("client", uri=[SPIFFE + "caller"])
        m = meshd_run({"listeners": [{"name": "auto", "address": "127.0.0.1:0", "protocol": "auto", "tls": {
            "certificates": [{"cert": server.cert, "key": server.key}], "client_ca": pki.ca_path,
            "plaintext": "allow"}}],
            "clusters": [{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{dubbo_port}"}]},
                         {"name": CALC, "endpoints": [{"address": f"127.0.0.1:{bolt_port}"}]}],
            "access_log": {"path": None}})
        port = m.port("auto")
        ctx = ssl.create_default_context(cafile=pki.ca_path)
        ctx.load_cert_chain(client.cert, client.key)
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="mesh.example.com") as s:
            s.sendall(b"".join(dubbo.encode_request(i, IFACE, "sayHello", ["tls", i], param_types=TYPES, version="1.0.0")
                               for i in range(1, 4)))
            events = _frames(s, dubbo.DubboDecoder(), 3)
            assert sorted(e.request_id for e in events) == [1, 2, 3] and all(e.status == 20 for e in events)
        with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="mesh.example.com") as s:
            s.sendall(bolt.encode_request(9, f"{CALC}:1.0", "add", [2, 3], arg_types=["int", "int"]))
            (event,) = _frames(s, bolt.BoltDecoder(), 1)
            assert event.request_id == 9 and event.sofa_response().app_response == 5
        with socket.create_connection(("127.0.0.1", port)) as plain:      # migration: plaintext still allowed
            plain.sendall(dubbo.encode_request(5, IFACE, "sayHello", ["plain", 1], param_types=TYPES, version="1.0.0"))
            decoder = dubbo.DubboDecoder()
            while (event := decoder.next_event()) is NEED_DATA:
                decoder.receive_data(plain.recv(65536))
            assert event.request_id == 5 and event.status == 20
    finally:
        dubbo_node.stop()
        bolt_node.stop()


@pytest.mark.skipif(not peers.installed(), reason=peers.missing_reason() or "peers not installed")
def test_plaintext_to_tls_egress_for_a_real_dubbo_consumer_and_rotation_under_load(meshd_run, pki, tmp_path):
    node, provider_port = peers.start_server("dubbo_provider.js", "--port", "0", "--server-id", "p")
    try:
        live = tmp_path / "live"
        live.mkdir()
        first = pki.leaf("front-1", uri=[SPIFFE + "demo"], dns=["demo.example.com"])
        cert, key = str(live / "front.pem"), str(live / "front-key.pem")
        shutil.copy(first.cert, cert)
        shutil.copy(first.key, key)
        egress_client = pki.leaf("egress", uri=[SPIFFE + "egress"])
        front = meshd_run({"listeners": [{"name": "dubbo-in", "address": "127.0.0.1:0", "protocol": "dubbo", "tls": {
            "certificates": [{"cert": cert, "key": key}], "client_ca": pki.ca_path, "require_client_cert": True,
            "allowed_sans": [SPIFFE + "egress"]}}],
            "clusters": [{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{provider_port}"}]}],
            "access_log": {"path": None}}, name="front")
        egress = meshd_run({"listeners": [{"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"}],
                            "clusters": [{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{front.port('dubbo-in')}"}],
                                          "tls": {"ca": pki.ca_path, "cert": egress_client.cert,
                                                  "key": egress_client.key, "sni": "demo.example.com",
                                                  "verify_san": SPIFFE + "demo"}}],
                            "access_log": {"path": None}}, name="egress")
        out = peers.run_node("dubbo_consumer.js", "--address", f"127.0.0.1:{egress.port('dubbo')}", "--count", "20",
                             "--concurrency", "4")
        results = [x for x in peers.json_lines(out.stdout) if x.get("event") == "result"]
        assert len(results) == 20 and all(r["ok"] for r in results), out.stdout[-1500:]

        load = SteadyLoad(type("M", (), {"listener_address": lambda self, p: f"127.0.0.1:{egress.port('dubbo')}"})(),
                          "dubbo")
        try:
            load.wait_ok(50)
            before = front.admin_json("/certs")["tls"][0]["certificates"][0]["serial"]
            bad = pki.mismatched("front-bad", dns=["demo.example.com"])
            shutil.copy(bad.cert, cert)
            shutil.copy(bad.key, key)
            deadline = time.monotonic() + 3
            while not front.admin_json("/certs")["tls"][0]["last_error"] and time.monotonic() < deadline:
                time.sleep(0.1)
            status = front.admin_json("/certs")["tls"][0]
            assert "does not match" in status["last_error"] and status["certificates"][0]["serial"] == before
            second = pki.leaf("front-2", uri=[SPIFFE + "demo"], dns=["demo.example.com"])
            started = time.monotonic()
            shutil.copy(second.key, key)
            shutil.copy(second.cert, cert)
            while front.admin_json("/certs")["tls"][0]["certificates"][0]["serial"] == before:
                assert time.monotonic() - started < 2.5, "new certificates not in force within 2 s"
                time.sleep(0.05)
            assert front.admin_json("/certs")["tls"][0]["last_error"] == ""
            load.wait_ok(load.ok + 50)
            summary = load.stop()
        finally:
            if load.state.summary is None:
                load.stop()
        assert summary["errors"] == 0 and summary["mismatched"] == 0, summary
        # a provider side with the wrong identity is refused by the egress (verify_san): a connect failure
        wrong = meshd_run({"listeners": [{"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"}],
                           "clusters": [{"name": IFACE,
                                         "endpoints": [{"address": f"127.0.0.1:{front.port('dubbo-in')}"}],
                                         "tls": {"ca": pki.ca_path, "cert": egress_client.cert,
                                                 "key": egress_client.key, "verify_san": SPIFFE + "someone-else"}}],
                           "access_log": {"path": None}}, name="wrong")
        out = peers.run_node("dubbo_consumer.js", "--address", f"127.0.0.1:{wrong.port('dubbo')}", "--count", "1",
                             "--timeout", "3000")
        (result,) = [x for x in peers.json_lines(out.stdout) if x.get("event") == "result"]
        assert result["ok"] is False
        assert "TLS peer rejected: san_mismatch" in json.dumps(result), result
    finally:
        node.stop()


def test_a_listener_with_a_bad_certificate_set_refuses_to_start(meshd_run, pki):
    old = pki.leaf("old", dns=["a.example.com"], days=-1)
    config = http_tls_config("127.0.0.1:9", {"certificates": [{"cert": old.cert, "key": old.key}]})
    with pytest.raises(MeshdError) as err:
        meshd_run(config, name="bad-tls")
    assert "exited with 1" in str(err.value)
    assert f"cannot start: tls listener:https: certificate {old.cert} expired at" in str(err.value)


@pytest.mark.zookeeper
@pytest.mark.skipif(not peers.installed(), reason=peers.missing_reason() or "peers not installed")
def test_discovered_providers_marked_ssl_enabled_are_dialled_with_tls(meshd_run, pki, zk_server, zk_root, zk_writer):
    """cluster_defaults.tls with ``endpoints: marked``: a Dubbo provider registered with ``ssl-enabled=true`` (what
    ``ProtocolConfig.setSslEnabled(true)`` writes) gets TLS, an unmarked one of the same interface plaintext."""
    from tests.e2e.test_zookeeper_discovery import add_dubbo_provider, zk_source
    secure_node, secure_port = peers.start_server("dubbo_provider.js", "--port", "0", "--server-id", "secure")
    plain_node, plain_port = peers.start_server("dubbo_provider.js", "--port", "0", "--server-id", "plain")
    try:
        server = pki.leaf("front", dns=["provider.example.com"])
        front = meshd_run({"listeners": [{"name": "dubbo-in", "address": "127.0.0.1:0", "protocol": "dubbo",
                                          "tls": {"certificates": [{"cert": server.cert, "key": server.key}]}}],
                           "clusters": [{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{secure_port}"}]}],
                           "access_log": {"path": None}}, name="front")
        add_dubbo_provider(zk_writer, IFACE, f"127.0.0.1:{front.port('dubbo-in')}", **{"ssl-enabled": "true"})
        add_dubbo_provider(zk_writer, IFACE, f"127.0.0.1:{plain_port}")
        consumer = meshd_run({"listeners": [{"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo"}],
                              "discovery": [zk_source(zk_server.hosts(), zk_root)],
                              "cluster_defaults": {"tls": {"ca": pki.ca_path, "sni": "provider.example.com",
                                                           "endpoints": "marked"}},
                              "access_log": {"path": None}}, name="consumer")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = [c for c in consumer.admin_json("/clusters")["clusters"] if c["name"] == IFACE]
            if found and len(found[0]["endpoints"]) == 2:
                break
            time.sleep(0.05)
        out = peers.run_node("dubbo_consumer.js", "--address", f"127.0.0.1:{consumer.port('dubbo')}", "--method",
                             "whoami", "--args", "[]", "--types", "", "--count", "20")
        results = [x for x in peers.json_lines(out.stdout) if x.get("event") == "result"]
        assert results and all(r["ok"] for r in results), out.stdout[-1500:]
        assert {r["value"] for r in results} == {"secure", "plain"}       # both reached, each its own way
        assert handshake_errors(front) == {}
    finally:
        secure_node.stop()
        plain_node.stop()


def test_the_verified_client_is_the_governance_origin(meshd_run, http_backend, pki):
    """A flow rule whose limitApp is one caller's SPIFFE id limits that caller only (Sentinel's origin)."""
    backend = http_backend("b")
    server = pki.leaf("server", dns=["b.example.com"])
    blocked = pki.leaf("blocked", uri=[SPIFFE + "batch-job"])
    other = pki.leaf("other", uri=[SPIFFE + "web"])
    config = http_tls_config(backend.address, {"certificates": [{"cert": server.cert, "key": server.key}],
                                               "client_ca": pki.ca_path, "require_client_cert": True})
    m = meshd_run(config)
    port = m.port("https")
    rule = [{"resource": f"GET:b.example.com:{port}/", "grade": 1, "count": 0, "limitApp": SPIFFE + "batch-job"}]
    assert m.admin("/rules/flow?dialect=java", "PUT", json.dumps(rule).encode())[0] == 200
    for _ in range(3):
        assert curl(port, "b.example.com", pki.ca_path, "--cert", blocked.cert, "--key", blocked.key).stdout \
            == "429 0"
        assert curl(port, "b.example.com", pki.ca_path, "--cert", other.cert, "--key", other.key).stdout == "200 0"
