"""End to end: the limits on what a client may send (issue 20, "Hostile input"), against ``meshd run``.

Raw sockets, because the clients these limits are for are the ones no library would be: a request without
Host, too many or too large headers, a long request line, a head sent slowly, more connections than a
listener takes, connections left idle on either side. Every refusal must be a well-formed response with
``connection: close`` and a body naming the limit, and the connection must then be closed.
"""

from __future__ import annotations

import json
import select
import socket
import ssl
import time

import pytest

from integration.certs import TestPKI
from meshd.codec import bolt, dubbo
from tests.e2e.test_rpc_proxy import IFACE, Raw, bolt_request, dubbo_request, rpc_config


def http_config(backend: str, headers_route: bool = False, cluster: dict | None = None, **listener) -> dict:
    """One http listener in front of ``backend``; with ``headers_route`` a second one, ``hdr``, whose routes
    read headers (routed without the raw route cache)."""
    def table(name: str, match: dict) -> dict:
        return {"name": name, "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": match, "route": {"cluster": "c"}}]}]}
    listeners = [{"name": "http", "address": "127.0.0.1:0", "protocol": "http", "route_config": "main", **listener}]
    tables = [table("main", {"prefix": "/"})]
    if headers_route:
        listeners.append({"name": "hdr", "address": "127.0.0.1:0", "protocol": "http", "route_config": "hdr"})
        tables.append(table("hdr", {"prefix": "/", "headers": [{"name": "x-no", "present": False}]}))
    return {"listeners": listeners, "route_configs": tables, "access_log": {"path": None},
            "clusters": [{"name": "c", "endpoints": [{"address": backend}], **(cluster or {})}]}


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def send(sock: socket.socket, data: bytes, step: int = 0) -> None:
    """``data``, whole or ``step`` bytes per write (each its own segment: meshd reads them one by one); the
    writes stop when meshd has answered (it refuses as soon as a limit is broken, and closes)."""
    for i in range(0, len(data), step or len(data)):
        if i and select.select([sock], [], [], 0.002)[0]:
            return
        try:
            sock.sendall(data[i:i + (step or len(data))])
        except (BrokenPipeError, ConnectionResetError):
            return


def response(sock: socket.socket, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One response (status, lower-case headers, body by content-length); (0, {}, b"") when the peer closed."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return 0, {}, b""
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed inside a response body"
        body += chunk
    assert len(body) == length, "more bytes than the response's content-length"
    return int(lines[0].split()[1]), headers, body


def closed_by_peer(sock: socket.socket, timeout: float = 3.0) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def refused(sock: socket.socket, status: int, text: str) -> None:
    """The next thing on ``sock`` is meshd's ``status`` answer naming ``text``, and then the connection closes."""
    got, headers, body = response(sock)
    assert got == status, (got, headers, body)
    assert headers.get("connection") == "close" and headers.get("content-type") == "text/plain", headers
    assert body.startswith(b"meshd: ") and text.encode() in body, body
    assert closed_by_peer(sock), "meshd answered but kept the connection open"
    sock.close()


def ok(sock: socket.socket, path: str = "/") -> dict:
    status, _, body = response(sock)
    assert status == 200, (status, body)
    seen = json.loads(body)
    assert seen["path"] == path
    return seen


def listener_json(m, name: str) -> dict:
    return next(x for x in m.admin_json("/listeners")["listeners"] if x["name"] == name)


def wait_for(predicate, timeout: float = 5.0, what: str = "") -> float:
    """Poll ``predicate`` until true; the seconds it took (fails after ``timeout``)."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout, f"not within {timeout}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - t0


# --------------------------------------------------------------------------------------------- Host
def test_host_is_required_of_http_1_1_requests_and_may_be_missing_from_http_1_0(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(http_config(b.address, headers_route=True))
    for listener in ("http", "hdr"):                 # routed by the raw route cache, and by headers
        p = m.port(listener)
        for step in (0, 7):                          # the head in one read (sent on as received), or rebuilt
            s = connect(p)
            send(s, b"GET /a HTTP/1.1\r\nUser-Agent: t\r\n\r\n", step)
            refused(s, 400, "HTTP/1.1 request without a Host header")
            for second in (b"Host: x\r\nHost: y\r\n", b"Host: x\r\nHost: x\r\n"):   # RFC 9112: any two
                s = connect(p)
                send(s, b"GET /a HTTP/1.1\r\n" + second + b"\r\n", step)
                refused(s, 400, "more than one Host header")
            s = connect(p)
            send(s, b"GET /old HTTP/1.0\r\n\r\n", step)
            ok(s, "/old")
            s.close()
        # a target the route cache already holds for a Host; then, on the same keep-alive connection, one without
        s = connect(p)
        send(s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok(s, "/a")["headers"]["host"] == "x"
        send(s, b"GET /a HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")   # the one pipelined behind: never sent
        refused(s, 400, "without a Host header")
    assert b.script.paths.count("/a") == 2, "only the requests with a Host reached the backend"


# -------------------------------------------------------------------------------- header block, line
def test_too_many_or_too_large_headers_get_431_and_a_long_request_line_414(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(http_config(b.address))
    p = m.port("http")
    for step in (0, 97):
        s = connect(p)
        hundred = b"".join(b"X-H%d: v\r\n" % i for i in range(99))        # and Host: 100, Envoy's default limit
        send(s, b"GET /h HTTP/1.1\r\nHost: x\r\n" + hundred + b"\r\n", step)
        assert len(ok(s, "/h")["headers"]) == 100
        send(s, b"GET /h HTTP/1.1\r\nHost: x\r\n" + hundred + b"X-One-More: v\r\n\r\n", step)
        refused(s, 431, "request headers exceed max_request_headers_count 100")
    s = connect(p)
    send(s, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    refused(s, 431, "request headers exceed max_request_headers_size 65536")

    # the request line "METHOD SP target SP HTTP/1.1" may be 16 KiB
    longest = "/" + "a" * (16384 - len("GET  HTTP/1.1") - 1)
    for step in (0, 1000):
        s = connect(p)
        send(s, f"GET {longest} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), step)
        ok(s, longest)
        send(s, f"GET {longest}b HTTP/1.1\r\nHost: x\r\n\r\n".encode(), step)
        refused(s, 414, "request line exceeds max_request_line_size 16384")
        s = connect(p)                                # the same target with a longer method is one byte too long
        send(s, f"POST {longest} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode(), step)
        refused(s, 414, "max_request_line_size 16384")
    s = connect(p)
    send(s, b"GET /still HTTP/1.1\r\nHost: x\r\n\r\n")
    ok(s, "/still")


def test_limits_are_configurable(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(http_config(b.address, max_request_headers_count=3, max_request_line_size="64B",
                              max_request_headers_size="1KiB"))
    p = m.port("http")
    s = connect(p)
    send(s, b"GET /x HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n")
    ok(s, "/x")
    send(s, b"GET /x HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
    refused(s, 431, "max_request_headers_count 3")
    s = connect(p)
    send(s, b"GET /" + b"a" * 60 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    refused(s, 414, "max_request_line_size 64")
    s = connect(p)
    send(s, b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"a" * 1100 + b"\r\n\r\n")
    refused(s, 431, "max_request_headers_size 1024")


# ---------------------------------------------------------------------------------- slow request heads
def test_a_head_that_takes_longer_than_request_headers_timeout_gets_408(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(http_config(b.address, request_headers_timeout="500ms"))
    p = m.port("http")
    for partial in (b"GET /slow HTTP/1.1\r\nHost: x\r\n", b"GE", b"GET /sl"):
        s = connect(p)
        t0 = time.monotonic()
        send(s, partial)
        refused(s, 408, "request headers not complete within request_headers_timeout 500ms")
        took = time.monotonic() - t0
        assert 0.45 <= took < 1.5, took

    # a slow loris: a byte every 100 ms keeps the connection busy, not the head alive
    s = connect(p)
    t0 = time.monotonic()
    head = b"GET /loris HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 50
    for byte in head:
        s.sendall(bytes([byte]))
        if select.select([s], [], [], 0.1)[0]:
            break                                     # answered
    refused(s, 408, "request_headers_timeout 500ms")
    assert time.monotonic() - t0 < 1.5

    # between requests a keep-alive connection is idle (idle_timeout), not slow; a head split over reads
    # within the timeout is served, and its timer does not fire later
    s = connect(p)
    send(s, b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
    ok(s, "/1")
    time.sleep(0.8)
    send(s, b"GET /2 HTTP/1.1\r\nHo")
    time.sleep(0.3)
    send(s, b"st: x\r\n\r\n")
    ok(s, "/2")
    time.sleep(0.6)
    send(s, b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
    ok(s, "/3")
    s.close()


# ---------------------------------------------------------------------------------- max_connections
def prometheus(m) -> str:
    return m.admin("/stats/prometheus")[1]


def test_connections_over_max_connections_are_closed_at_once_and_counted(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(http_config(b.address, max_connections=3))
    p = m.port("http")
    socks = [connect(p) for _ in range(3)]
    for i, s in enumerate(socks):
        send(s, b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        ok(s, f"/{i}")
    extra = connect(p)
    t0 = time.monotonic()
    assert closed_by_peer(extra, 2.0)
    assert time.monotonic() - t0 < 0.5, "closed at once"
    assert 'meshd_listener_connections_overflow_total{listener="http"} 1.0' in prometheus(m)
    info = listener_json(m, "http")
    assert (info["connections"], info["max_connections"], info["overflow"]) == (3, 3, 1)
    for i, s in enumerate(socks):                     # the first three are unharmed
        send(s, b"GET /again%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        ok(s, f"/again{i}")
    socks.pop().close()
    wait_for(lambda: listener_json(m, "http")["connections"] == 2, what="a closed connection is uncounted")
    s = connect(p)
    send(s, b"GET /new HTTP/1.1\r\nHost: x\r\n\r\n")
    ok(s, "/new")
    for s in socks + [s]:
        s.close()
    wait_for(lambda: listener_json(m, "http")["connections"] == 0, what="all uncounted")


def test_max_connections_on_an_auto_listener_counts_each_connection_once(meshd_run, provider):
    p = provider("dubbo", "p")
    config = rpc_config([{"name": IFACE, "endpoints": [{"address": p.address}]}])
    config["listeners"] = [{"name": "auto", "address": "127.0.0.1:0", "protocol": "auto", "max_connections": 2}]
    m = meshd_run(config)
    port = m.port("auto")
    first, second = Raw(port, "dubbo"), Raw(port, "dubbo")
    for rid, raw in ((1, first), (2, second)):        # sniffed, then handed to the Dubbo handler
        raw.send(dubbo_request(rid=rid))
        assert raw.read().status == 20
    third = Raw(port, "dubbo")
    assert third.closed_by_peer(2.0)
    assert listener_json(m, "auto")["overflow"] == 1
    first.close()
    wait_for(lambda: listener_json(m, "auto")["connections"] == 1, what="the handed-on connection uncounted")
    fourth = Raw(port, "dubbo")
    fourth.send(dubbo_request(rid=4))
    assert fourth.read().status == 20
    fourth.close()
    wait_for(lambda: listener_json(m, "auto")["connections"] == 1, what="uncounted")
    silent = Raw(port, "dubbo")                       # counted while it is still being sniffed
    wait_for(lambda: listener_json(m, "auto")["connections"] == 2, what="a connection not sniffed yet is counted")
    assert Raw(port, "dubbo").closed_by_peer(2.0)
    assert listener_json(m, "auto")["overflow"] == 2
    silent.close()
    second.send(dubbo_request(rid=5))
    assert second.read().status == 20


def test_max_connections_on_a_tls_listener_refuses_before_the_handshake(meshd_run, http_backend, tmp_path):
    pki = TestPKI(tmp_path / "pki")
    leaf = pki.leaf("a", dns=["a.example.com"])
    b = http_backend("b")
    config = http_config(b.address, max_connections=2, tls={"certificates": [{"cert": leaf.cert, "key": leaf.key}]})
    m = meshd_run(config)
    p = m.port("http")
    ctx = ssl.create_default_context(cafile=pki.ca_path)
    socks = []
    for i in range(2):
        s = ctx.wrap_socket(connect(p), server_hostname="a.example.com")
        send(s, b"GET /t%d HTTP/1.1\r\nHost: a\r\n\r\n" % i)
        ok(s, f"/t{i}")
        socks.append(s)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        ctx.wrap_socket(connect(p), server_hostname="a.example.com")
    assert 'meshd_listener_connections_overflow_total{listener="http"} 1.0' in prometheus(m)
    assert not m.admin_json("/certs")["handshake_errors"], "a refused connection is not a failed handshake"
    socks.pop().close()
    wait_for(lambda: listener_json(m, "http")["connections"] == 1, what="a closed TLS connection is uncounted")
    s = ctx.wrap_socket(connect(p), server_hostname="a.example.com")
    send(s, b"GET /t9 HTTP/1.1\r\nHost: a\r\n\r\n")
    ok(s, "/t9")


# ----------------------------------------------------------------------------------- idle timeouts
def test_http_idle_timeouts_downstream_and_upstream(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(http_config(b.address, idle_timeout="1s", cluster={"idle_timeout": "1s"}))
    p = m.port("http")
    busy = connect(p)
    for i in range(6):                                # in use every 400 ms: never idle for a second
        send(busy, b"GET /busy%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        ok(busy, f"/busy{i}")
        time.sleep(0.4)
    assert b.connections == 1, "the upstream connection was reused throughout"
    t0 = time.monotonic()
    assert closed_by_peer(busy, 4.0), "a keep-alive connection idle longer than idle_timeout is closed"
    assert 0.9 <= time.monotonic() - t0 < 3.5
    wait_for(lambda: b.connections == 0, 4.0, "the idle upstream connection is closed")

    stalled = connect(p)                              # a body the client stopped sending
    send(stalled, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    t0 = time.monotonic()
    assert closed_by_peer(stalled, 4.0)
    assert 0.9 <= time.monotonic() - t0 < 3.5
    s = connect(p)
    send(s, b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
    ok(s, "/after")


@pytest.mark.parametrize("protocol", ["dubbo", "bolt"])
def test_rpc_idle_timeouts_downstream_and_upstream(meshd_run, provider, protocol):
    p = provider(protocol, "p")
    m = meshd_run(rpc_config([{"name": IFACE, "idle_timeout": "1s", "heartbeat_interval": "200ms",
                               "endpoints": [{"address": p.address}]}], idle_timeout="1s"))
    request, good = (dubbo_request, 20) if protocol == "dubbo" else (bolt_request, 0)
    raw = Raw(m.port(protocol), protocol)
    for rid in range(6):                              # a call every 400 ms: both sides stay open
        raw.send(request(rid=rid))
        assert raw.read().status == good
        time.sleep(0.4)
    assert len(p.conns) == 1
    upstream = next(iter(p.conns))
    t0 = time.monotonic()
    assert raw.closed_by_peer(4.0), "an idle caller connection is closed"
    assert 0.9 <= time.monotonic() - t0 < 3.5
    # heartbeats every 200 ms are no use: the provider connection closes after a second without a call
    wait_for(lambda: not p.conns, 4.0, "the idle provider connection is closed")
    assert p.script.heartbeats >= 2 and upstream not in p.conns
    again = Raw(m.port(protocol), protocol)
    again.send(request(rid=9))
    ev = again.read()
    assert (ev.request_id, ev.status) == (9, good) and type(ev) in (dubbo.DubboResponse, bolt.BoltResponse)


def test_tcp_idle_timeout_closes_both_sides(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run({"listeners": [{"name": "tcp", "address": "127.0.0.1:0", "protocol": "tcp", "cluster": "c",
                                  "idle_timeout": "1s"}],
                   "clusters": [{"name": "c", "endpoints": [{"address": b.address}]}], "access_log": {"path": None}})
    s = connect(m.port("tcp"))
    for i in range(6):                                # bytes every 400 ms: not idle
        send(s, b"GET /t%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
        ok(s, f"/t{i}")
        time.sleep(0.4)
    t0 = time.monotonic()
    assert closed_by_peer(s, 4.0)
    assert 0.9 <= time.monotonic() - t0 < 3.5
    wait_for(lambda: b.connections == 0, 2.0, "the relayed upstream connection is closed too")


# ----------------------------------------------------------------------------------- RPC frame size
@pytest.mark.parametrize("protocol", ["dubbo", "bolt"])
def test_an_rpc_frame_over_max_frame_size_is_answered_and_its_connection_closed(meshd_run, provider, protocol):
    p = provider(protocol, "p")
    m = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": p.address}]}], max_frame_size="1KiB"))
    request, good, too_large = (dubbo_request, 20, 40) if protocol == "dubbo" else (bolt_request, 0, 9)
    port = m.port(protocol)
    fine = Raw(port, protocol)
    fine.send(request(rid=1))
    assert fine.read().status == good
    big = Raw(port, protocol)
    big.send(request(rid=2, args=("x" * 2000,)))
    ev = big.read()
    assert (ev.request_id, ev.status) == (2, too_large), ev
    assert big.closed_by_peer()
    assert len(p.script.requests) == 1, "the oversized request never reached the provider"
    fine.send(request(rid=3))
    assert fine.read().status == good
