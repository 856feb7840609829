"""End to end: ``meshd run`` as a subprocess in front of real HTTP backends on free ports."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
from collections import Counter

import pytest

from integration.process import free_port


def routes(*route_list, name="main"):
    return [{"name": name, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": list(route_list)}]}]


def base_config(route_list, clusters, **extra):
    return {
        "listeners": [{"name": "http", "address": "127.0.0.1:0", "protocol": "http", "route_config": "main"}],
        "route_configs": routes(*route_list),
        "clusters": clusters,
        **extra,
    }


def get(port, path="/", headers=None, method="GET", body=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def server_of(body: bytes) -> str:
    return json.loads(body)["server"]


def test_forwards_with_keepalive_and_round_robin(meshd_run, http_backend):
    b1, b2 = http_backend("b1"), http_backend("b2")
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {"cluster": "c"}}],
                          [{"name": "c", "endpoints": [{"address": b1.address}, {"address": b2.address}]}]))
    conn = http.client.HTTPConnection("127.0.0.1", m.port("http"), timeout=5)
    seen = Counter()
    for i in range(20):
        conn.request("GET", f"/x/{i}?q=1", headers={"x-test": "yes"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200
        assert body["path"] == f"/x/{i}?q=1"
        assert body["headers"]["x-test"] == "yes"
        seen[body["server"]] += 1
    conn.close()
    assert seen == {"b1": 10, "b2": 10}
    clusters = m.admin_json("/clusters")["clusters"]
    conns = [ep["connections"]["http"]["connects"] for ep in clusters[0]["endpoints"]]
    assert conns == [1, 1], "one keep-alive upstream connection per endpoint for one sequential client"


def test_weighted_clusters_split(meshd_run, http_backend):
    a, b = http_backend("a"), http_backend("b")
    m = meshd_run(base_config(
        [{"match": {"prefix": "/"}, "route": {"weighted_clusters": [{"cluster": "ca", "weight": 90},
                                                                     {"cluster": "cb", "weight": 10}]}}],
        [{"name": "ca", "endpoints": [{"address": a.address}]}, {"name": "cb", "endpoints": [{"address": b.address}]}]))
    conn = http.client.HTTPConnection("127.0.0.1", m.port("http"), timeout=5)
    seen = Counter()
    for _ in range(1000):
        conn.request("GET", "/")
        seen[server_of(conn.getresponse().read())] += 1
    # binomial(1000, 0.1): mean 100, sd 9.5; 60..140 is more than 4 sd either side
    assert 60 <= seen["b"] <= 140 and seen["a"] + seen["b"] == 1000


def test_header_manipulation_and_direct_response(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(base_config([
        {"match": {"path": "/health"}, "direct_response": {"status": 200, "body": "meshd says ok"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "c"},
         "request_headers_to_add": [{"header": {"key": "x-added", "value": "1"}},
                                    {"header": {"key": "x-replaced", "value": "new"}, "append": False}],
         "request_headers_to_remove": ["x-secret"],
         "response_headers_to_add": [{"header": {"key": "x-resp", "value": "r"}}],
         "response_headers_to_remove": ["x-backend"]},
    ], [{"name": "c", "endpoints": [{"address": b.address}]}]))
    status, headers, body = get(m.port("http"), "/a", {"x-secret": "s", "x-replaced": "old", "x-kept": "k"})
    seen = json.loads(body)["headers"]
    assert status == 200
    assert seen["x-added"] == "1" and seen["x-replaced"] == "new" and seen["x-kept"] == "k"
    assert "x-secret" not in seen
    assert headers["x-resp"] == "r" and "x-backend" not in {k.lower() for k in headers}
    status, _, body = get(m.port("http"), "/health")
    assert (status, body) == (200, b"meshd says ok")


def test_header_and_host_matching(meshd_run, http_backend):
    a, b, c = http_backend("a"), http_backend("b"), http_backend("c")
    config = base_config([], [{"name": n, "endpoints": [{"address": x.address}]} for n, x in
                              (("ca", a), ("cb", b), ("cc", c))])
    config["route_configs"] = [{"name": "main", "virtual_hosts": [
        {"name": "api", "domains": ["api.example.com", "*.api.example.com"], "routes": [
            {"match": {"prefix": "/", "headers": [{"name": "x-canary", "exact": "1"}]}, "route": {"cluster": "cb"}},
            {"match": {"prefix": "/"}, "route": {"cluster": "ca"}}]},
        {"name": "rest", "domains": ["*"], "routes": [{"match": {"regex": "/r/[0-9]+"}, "route": {"cluster": "cc"}}]},
    ]}]
    m = meshd_run(config)
    p = m.port("http")
    assert server_of(get(p, "/", {"Host": "api.example.com:8080"})[2]) == "a"
    assert server_of(get(p, "/", {"Host": "v1.api.example.com", "x-canary": "1"})[2]) == "b"
    assert server_of(get(p, "/r/42", {"Host": "other"})[2]) == "c"
    status, headers, body = get(p, "/r/x", {"Host": "other"})
    assert status == 404 and b"no route" in body


def test_error_statuses_and_flags(meshd_run, http_backend, tmp_path):
    b = http_backend("slow")
    dead = free_port()
    log = tmp_path / "access.log"
    m = meshd_run(base_config([
        {"match": {"prefix": "/slow"}, "route": {"cluster": "c", "timeout": "300ms"}},
        {"match": {"prefix": "/dead"}, "route": {"cluster": "dead"}},
        {"match": {"prefix": "/empty"}, "route": {"cluster": "empty"}},
    ], [{"name": "c", "endpoints": [{"address": b.address}]},
        {"name": "dead", "connect_timeout": "500ms", "endpoints": [{"address": f"127.0.0.1:{dead}"}]},
        {"name": "empty", "endpoints": []}], access_log={"path": str(log)}))
    p = m.port("http")
    t0 = time.monotonic()
    status, _, body = get(p, "/slow", {"x-backend-delay-ms": "3000"})
    assert status == 504 and b"timeout" in body
    assert time.monotonic() - t0 < 2.5
    assert get(p, "/dead")[0] == 502
    assert get(p, "/empty")[0] == 503
    assert get(p, "/nowhere")[0] == 404
    status, _, _ = get(p, "/slow/reset", {"x-backend-reset": "1"})
    assert status == 502
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if text.count("\n") >= 5:
            break
        time.sleep(0.1)
    flags = [line.split('" ')[1].split()[1] for line in text.splitlines()]
    assert flags == ["UT", "UF", "UH", "NR", "UR"], text
    prom = m.admin("/stats/prometheus")[1]
    assert 'meshd_requests_total{cluster="c",listener="http",outcome="UT",protocol="http",status="504"} 1.0' in prom


def test_retries_5xx_on_other_host_but_not_post(meshd_run, http_backend):
    good, bad = http_backend("good"), http_backend("bad")
    bad.script.status = 503
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {
        "cluster": "c", "retry_policy": {"retry_on": "5xx", "num_retries": 2, "retry_back_off": {"base_interval": "1ms"}}}}],
        [{"name": "c", "lb_policy": "round_robin", "endpoints": [{"address": good.address}, {"address": bad.address}]}]))
    p = m.port("http")
    for _ in range(10):
        status, _, body = get(p, "/")
        assert status == 200 and server_of(body) == "good"
    bad_before = bad.script.requests
    posts = Counter(get(p, "/", method="POST", body=b"x")[0] for _ in range(10))
    assert posts == {200: 5, 503: 5}, "POST is not idempotent: no retry unless the route says so"
    assert bad.script.requests - bad_before == 5


def test_per_try_timeout_then_success_on_next_host(meshd_run, http_backend):
    slow, fast = http_backend("slow"), http_backend("fast")
    slow.script.delay = 2.0
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {
        "cluster": "c", "timeout": "1500ms",
        "retry_policy": {"retry_on": "timeout", "num_retries": 1, "per_try_timeout": "200ms",
                         "retry_back_off": {"base_interval": "1ms"}}}}],
        [{"name": "c", "lb_policy": "round_robin", "endpoints": [{"address": slow.address}, {"address": fast.address}]}]))
    p = m.port("http")
    for _ in range(4):
        t0 = time.monotonic()
        status, _, body = get(p, "/")
        assert status == 200 and server_of(body) == "fast"
        assert time.monotonic() - t0 < 1.4


def test_large_bodies_stream_without_buffering(meshd_run, http_backend):
    b = http_backend("big")
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {"cluster": "c", "timeout": "60s"}}],
                          [{"name": "c", "endpoints": [{"address": b.address}]}]))
    pid = m.proc.pid
    size = 100 * 1024 * 1024
    piece = os.urandom(1 << 20)
    digest = hashlib.sha256()

    def body():
        for _ in range(size // len(piece)):
            digest.update(piece)
            yield piece

    rss_before = _rss(pid)
    conn = http.client.HTTPConnection("127.0.0.1", m.port("http"), timeout=60)
    conn.request("POST", "/echo", body=body(), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    echo = json.loads(resp.read())
    assert resp.status == 200
    assert echo == {"received": size, "sha256": digest.hexdigest(), "server": "big"}
    conn.request("GET", "/download", headers={"x-backend-body-size": str(size)})
    resp = conn.getresponse()
    got = 0
    while chunk := resp.read(1 << 20):
        got += len(chunk)
    assert got == size
    assert _rss(pid) - rss_before < 40 * 1024 * 1024, "a 100 MB body must not be buffered whole"


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def raw_exchange(port: int, data: bytes, expect: int, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until ``expect`` responses have arrived (by counting status lines)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"HTTP/1.1 ") < expect and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    time.sleep(0.05)
    s.settimeout(0.2)
    try:
        while chunk := s.recv(65536):
            buf += chunk
    except socket.timeout:
        pass
    s.close()
    return buf


def test_pipelining_expect_continue_and_connection_close(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {"cluster": "c"}}],
                          [{"name": "c", "endpoints": [{"address": b.address}]}]))
    p = m.port("http")
    out = raw_exchange(p, b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 3)
    paths = [json.loads(part.split(b"\r\n\r\n", 1)[1][:part.split(b"\r\n\r\n", 1)[1].rfind(b"}") + 1])["path"]
             for part in out.split(b"HTTP/1.1 200 OK\r\n")[1:]]
    assert paths == ["/one", "/two", "/three"]
    assert out.count(b"connection: close") == 1

    s = socket.create_connection(("127.0.0.1", p), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(b"hello")
    reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200 OK") and b'"received": 5' in reply
    s.close()

    out = raw_exchange(p, b"GET /old HTTP/1.0\r\n\r\n", 1)
    assert out.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in out.lower()


def test_malformed_request_gets_400_and_others_keep_working(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {"cluster": "c"}}],
                          [{"name": "c", "endpoints": [{"address": b.address}]}]))
    p = m.port("http")
    out = raw_exchange(p, b"GARBAGE\x00\x01 / HTTP/9\r\n\r\n", 1)
    assert out.startswith(b"HTTP/1.1 400")
    out = raw_exchange(p, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 1)
    assert out.startswith(b"HTTP/1.1 431")
    assert get(p, "/")[0] == 200


def test_file_source_applies_changes_live_and_rejects_broken_files(meshd_run, http_backend, tmp_path):
    a, b = http_backend("a"), http_backend("b")
    clusters = tmp_path / "clusters.yaml"
    clusters.write_text(f"clusters:\n  - name: c\n    endpoints: [{{address: '{a.address}'}}]\n")
    m = meshd_run({**base_config([{"match": {"prefix": "/"}, "route": {"cluster": "c"}}], []),
               "discovery": [{"type": "file", "path": str(clusters)}]})
    p = m.port("http")
    assert server_of(get(p, "/")[2]) == "a"
    clusters.write_text(f"clusters:\n  - name: c\n    endpoints: [{{address: '{b.address}'}}]\n")
    t0 = time.monotonic()
    while server_of(get(p, "/")[2]) != "b":
        assert time.monotonic() - t0 < 1.0, "a file change must apply within 1 s"
        time.sleep(0.02)
    clusters.write_text("clusters:\n  - name: c\n    endpoints: [{address: 'not-an-address'}]\n")
    time.sleep(0.8)
    assert server_of(get(p, "/")[2]) == "b", "a broken file keeps the previous content in force"
    source = m.admin_json("/clusters")["sources"][0]
    assert "not-an-address" in source["last_error"] and source["rejects"] == 1


def test_drain_on_sigterm_loses_no_request(meshd_run, http_backend):
    b = http_backend("b")
    b.script.delay = 0.5
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {"cluster": "c"}}],
                          [{"name": "c", "endpoints": [{"address": b.address}]}], drain_timeout="5s"))
    p = m.port("http")
    results: list = []

    def call():
        try:
            results.append(get(p, "/")[0])
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            results.append(repr(exc))

    threads = [threading.Thread(target=call) for _ in range(20)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while b.script.requests < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b.script.requests == 20, "all requests must be in flight before the drain starts"
    code = m.terminate()
    for t in threads:
        t.join(10)
    assert results == [200] * 20
    assert code == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", p), timeout=1)


def test_admin_endpoints(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(base_config([{"match": {"prefix": "/"}, "route": {"cluster": "c"}}],
                          [{"name": "c", "endpoints": [{"address": b.address, "metadata": {"version": "v1"}}]}]))
    assert m.admin("/healthz") == (200, "ok\n")
    assert json.loads(m.admin("/ready")[1]) == {"ready": True}
    cluster = m.admin_json("/clusters")["clusters"][0]
    ep = cluster["endpoints"][0]
    assert (cluster["name"], ep["address"], ep["metadata"], ep["health"], ep["sources"]) == \
        ("c", b.address, {"version": "v1"}, "healthy", ["static"])
    assert m.admin_json("/routes")["route_configs"][0]["name"] == "main"
    dump = m.admin_json("/config_dump")
    assert dump["listeners"][0]["name"] == "http" and dump["admin"]["address"] == m.admin_address
    get(m.port("http"), "/")
    prom = m.admin("/stats/prometheus")[1]
    assert 'meshd_requests_total{cluster="c",listener="http",outcome="ok",protocol="http",status="200"} 1.0' in prom
    assert "meshd_request_duration_seconds_bucket" in prom
    assert m.admin("/drain", method="POST")[0] == 202
    assert m.admin("/healthz")[0] == 503
