"""End to end: Dubbo2 and Bolt through ``meshd run``, with real third-party peers and scripted providers.

Real peers (installed by ``python -m integration.peers install``): apache-dubbo-js consumers, a
dubbo-remoting (sofa-rpc-node) Dubbo provider, sofa-rpc-node Bolt client and server. Exact statuses are
checked on raw frames with meshd's own codecs; timeouts, heartbeats and readonly use the scriptable
providers of ``integration.servers.rpc_provider``.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import time

import pytest

from integration import peers
from integration.process import free_port
from meshd import compiled
from meshd.codec import bolt, dubbo
from meshd.codec.base import NEED_DATA

needs_peers = pytest.mark.skipif(not peers.installed(), reason=peers.missing_reason() or
                                 "third-party peers not installed: run `python -m integration.peers install`")

IFACE = "org.example.DemoService"


@pytest.fixture(scope="module")
def dubbo_peer():
    if not peers.installed():
        pytest.skip(peers.missing_reason() or "peers not installed")
    node, port = peers.start_server("dubbo_provider.js", "--port", "0", "--server-id", "dubbo-peer")
    yield port
    node.stop()


@pytest.fixture(scope="module")
def bolt_peer():
    if not peers.installed():
        pytest.skip(peers.missing_reason() or "peers not installed")
    node, port = peers.start_server("bolt_server.js", "--port", "0", "--server-id", "bolt-peer",
                                    "--interface", IFACE)
    yield port
    node.stop()



def rpc_config(clusters, routes=(), **listener_extra):
    config = {
        "listeners": [
            {"name": "dubbo", "address": "127.0.0.1:0", "protocol": "dubbo", **listener_extra},
            {"name": "bolt", "address": "127.0.0.1:0", "protocol": "bolt", **listener_extra},
            {"name": "auto", "address": "127.0.0.1:0", "protocol": "auto", **listener_extra},
        ],
        "clusters": clusters,
    }
    if routes:
        config["route_configs"] = [{"name": "rpc", "virtual_hosts": [{"name": "all", "domains": ["*"],
                                                                      "routes": list(routes)}]}]
        for listener in config["listeners"]:
            listener["route_config"] = "rpc"
    return config


def summary(result) -> dict:
    lines = peers.json_lines(result.stdout)
    done = [x for x in lines if x.get("event") == "summary"]
    assert done, f"no summary from the peer:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return done[-1]


def first_result(result) -> dict:
    return next(x for x in peers.json_lines(result.stdout) if x.get("event") == "result")


class Raw:
    """A raw client connection speaking frames with meshd's codecs."""

    def __init__(self, port: int, protocol: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.decoder = dubbo.DubboDecoder() if protocol == "dubbo" else bolt.BoltDecoder()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 5.0):
        self.sock.settimeout(timeout)
        while True:
            ev = self.decoder.next_event()
            if ev is not NEED_DATA:
                return ev
            data = self.sock.recv(65536)
            if not data:
                return None
            self.decoder.receive_data(data)

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


# ------------------------------------------------------------------------------------ real peers
@needs_peers
def test_dubbo_and_bolt_calls_through_meshd_with_real_peers(meshd_run, dubbo_peer, bolt_peer):
    m = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{dubbo_peer}"}]},
                          {"name": "bolt-demo", "endpoints": [{"address": f"127.0.0.1:{bolt_peer}"}]}],
                         [{"match": {"service": IFACE, "headers": [{"name": "service", "present": True}]},
                           "route": {"cluster": "bolt-demo"}}]))
    for listener in ("dubbo", "auto"):
        out = peers.run_node("dubbo_consumer.js", "--address", f"127.0.0.1:{m.port(listener)}", "--count", "20",
                             "--concurrency", "5")
        s = summary(out)
        assert (s["ok"], s["errors"]) == (20, 0), out.stdout[-1000:]
        assert first_result(out)["value"] == "hello world x7"
    for listener in ("bolt", "auto"):
        out = peers.run_node("bolt_client.js", "--address", f"127.0.0.1:{m.port(listener)}", "--interface", IFACE,
                             "--method", "add", "--args", "[2,3]", "--count", "20", "--concurrency", "5")
        s = summary(out)
        assert (s["ok"], s["errors"]) == (20, 0), out.stdout[-1000:]
        assert first_result(out)["value"] == 5


@needs_peers
def test_a_one_way_call_reaches_the_real_provider_and_its_stray_answer_is_dropped(meshd_run, dubbo_peer):
    # dubbo-remoting answers one-way requests too (tests/integration/peers/test_encoders_with_peers.py): meshd
    # forwards the call, sends the caller nothing for it, and counts the provider's answer as a late response.
    m = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{dubbo_peer}"}]}]))
    raw = Raw(m.port("dubbo"), "dubbo")
    raw.send(dubbo.encode_request(3, IFACE, "sayHello", ["one-way", 1], param_types="Ljava/lang/String;I",
                                  version="1.0.0", twoway=False) +
             dubbo.encode_request(4, IFACE, "sayHello", ["two-way", 2], param_types="Ljava/lang/String;I",
                                  version="1.0.0"))
    ev = raw.read()
    assert (type(ev), ev.request_id, ev.status) == (dubbo.DubboResponse, 4, 20) and \
        ev.result().value == "hello two-way x2"
    deadline = time.monotonic() + 5
    while True:
        pool = m.admin_json("/clusters")["clusters"][0]["endpoints"][0]["connections"]["dubbo"]
        if pool["late_responses"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (pool["in_flight"], pool["late_responses"]) == (0, 1), "the provider's answer to the one-way call"
    with pytest.raises(socket.timeout):
        raw.read(timeout=0.3)                 # nothing more for the caller: no answer to its one-way call
    raw.close()


@needs_peers
@pytest.mark.parametrize("protocol", ["dubbo", "bolt"])
def test_1000_concurrent_calls_over_4_connections_reach_the_right_caller(meshd_run, dubbo_peer, bolt_peer, protocol):
    upstream = dubbo_peer if protocol == "dubbo" else bolt_peer
    m = meshd_run(rpc_config([{"name": IFACE, "connections_per_endpoint": 2,
                           "endpoints": [{"address": f"127.0.0.1:{upstream}"}]}]))
    out = peers.run_node("echo_load.js", "--protocol", protocol, "--address", f"127.0.0.1:{m.port(protocol)}",
                         "--interface", IFACE, "--count", "1000", "--concurrency", "1000", "--connections", "4",
                         timeout=120)
    s = summary(out)
    assert (s["ok"], s["mismatched"], s["errors"]) == (1000, 0, 0), s
    pool = m.admin_json("/clusters")["clusters"][0]["endpoints"][0]["connections"][protocol]
    assert pool["connections"] <= 2 and pool["in_flight"] == 0


@needs_peers
def test_dubbo_errors_as_the_consumer_sees_them(meshd_run, dubbo_peer, tmp_path):
    dead = free_port()
    m = meshd_run(rpc_config(
        [{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{dubbo_peer}"}]},
         {"name": "down", "endpoints": [{"address": f"127.0.0.1:{dead}"}]}],
        [{"match": {"method": "sleep"}, "route": {"cluster": IFACE, "timeout": "300ms"}},
         {"match": {"service": "org.example.Down"}, "route": {"cluster": "down"}}]),
        )
    address = f"127.0.0.1:{m.port('dubbo')}"
    cases = [(["--interface", "org.example.Nope"], "no route and no cluster for interface 'org.example.Nope'"),
             (["--interface", "org.example.Down"], f"cannot connect to provider 127.0.0.1:{dead}"),
             (["--method", "sleep", "--args", "[3000]", "--types", "int"], "upstream request timeout")]
    for args, message in cases:
        t0 = time.monotonic()
        res = first_result(peers.run_node("dubbo_consumer.js", "--address", address, *args))
        assert res["ok"] is False and message in res["error"]["message"], res
        assert time.monotonic() - t0 < 10
    assert res["ms"] < 1500, "the 300 ms route timeout, not the consumer's own, answered"


def dubbo_request(service=IFACE, method="sayHello", args=("x",), rid=7, **kw) -> bytes:
    return dubbo.encode_request(rid, service, method, list(args), param_types=["java.lang.String"] * len(args),
                                version="1.0.0", **kw)


def bolt_request(service=f"{IFACE}:1.0", method="echo", args=("x",), rid=7, **kw) -> bytes:
    return bolt.encode_request(rid, service, method, list(args), arg_types=["java.lang.String"] * len(args), **kw)


def test_synthesized_statuses_on_the_wire(meshd_run, provider):
    dead = free_port()
    slow_d, slow_b = provider("dubbo", "slow-d"), provider("bolt", "slow-b")
    slow_d.script.delay = slow_b.script.delay = 2.0
    m = meshd_run(rpc_config(
        [{"name": "down", "endpoints": [{"address": f"127.0.0.1:{dead}"}]},
         {"name": "slow-d", "endpoints": [{"address": slow_d.address}]},
         {"name": "slow-b", "endpoints": [{"address": slow_b.address}]},
         {"name": "empty", "endpoints": []}],
        [{"match": {"service": {"prefix": "down."}}, "route": {"cluster": "down"}},
         {"match": {"service": {"prefix": "empty."}}, "route": {"cluster": "empty"}},
         {"match": {"service": "slow.S", "headers": [{"name": "service", "present": True}]},
          "route": {"cluster": "slow-b", "timeout": "300ms"}},
         {"match": {"service": "slow.S"}, "route": {"cluster": "slow-d", "timeout": "300ms"}}]))
    d = Raw(m.port("dubbo"), "dubbo")
    for service, status, text in [("nope.S", 60, "no route"), ("down.S", 80, "cannot connect"),
                                  ("empty.S", 60, "no healthy provider"), ("slow.S", 31, "timeout")]:
        d.send(dubbo_request(service, rid=41))
        ev = d.read()
        assert (type(ev), ev.request_id, ev.status) == (dubbo.DubboResponse, 41, status), ev
        assert text in ev.error_message()
    b = Raw(m.port("bolt"), "bolt")
    for service, status in [("nope.S:1.0", 6), ("down.S:1.0", 0x10), ("empty.S:1.0", 0x10), ("slow.S:1.0", 7)]:
        b.send(bolt_request(service, rid=42))
        ev = b.read()
        assert (type(ev), ev.request_id, ev.status) == (bolt.BoltResponse, 42, status), (service, ev)
    d.close()
    b.close()


def test_protocol_deadlines_shorten_the_route_timeout_and_late_answers_are_dropped(meshd_run, provider):
    slow = provider("dubbo", "slow")
    slow.script.delay = 0.6
    m = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": slow.address}]}]))
    raw = Raw(m.port("dubbo"), "dubbo")
    t0 = time.monotonic()
    raw.send(dubbo_request(rid=5, attachments={"timeout": "200"}))
    ev = raw.read()
    assert (ev.request_id, ev.status) == (5, 31) and time.monotonic() - t0 < 0.55
    time.sleep(0.8)                           # the provider's late answer arrives and must be dropped
    pool = m.admin_json("/clusters")["clusters"][0]["endpoints"][0]["connections"]["dubbo"]
    assert (pool["in_flight"], pool["late_responses"]) == (0, 1)
    slow.script.delay = 0
    raw.send(dubbo_request(rid=6, args=("again",)))
    ev = raw.read()
    assert (ev.request_id, ev.status, ev.result().value) == (6, 20, "slow:sayHello:again")
    b_slow = provider("bolt", "b-slow")
    b_slow.script.delay = 0.6
    m2 = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": b_slow.address}]}]), name="meshd2")
    braw = Raw(m2.port("bolt"), "bolt")
    t0 = time.monotonic()
    braw.send(bolt_request(rid=9, timeout=200))
    ev = braw.read()
    assert (ev.request_id, ev.status) == (9, 7) and time.monotonic() - t0 < 0.55


def test_heartbeats_are_answered_by_meshd(meshd_run):
    m = meshd_run(rpc_config([]))
    d = Raw(m.port("auto"), "dubbo")
    d.send(dubbo.encode_heartbeat(99))
    ev = d.read()
    assert (type(ev), ev.request_id, ev.status) == (dubbo.DubboHeartbeatAck, 99, 20)
    b = Raw(m.port("bolt"), "bolt")
    b.send(bolt.encode_heartbeat(77))
    ev = b.read()
    assert (type(ev), ev.request_id, ev.status) == (bolt.BoltHeartbeatAck, 77, 0)


def test_garbage_closes_only_that_connection(meshd_run, provider):
    p = provider("dubbo", "p")
    m = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": p.address}]}], max_frame_size="1MiB"))
    port = m.port("dubbo")
    good = Raw(port, "dubbo")
    good.send(dubbo_request(rid=1))
    assert good.read().status == 20
    noise = Raw(port, "dubbo")
    noise.send(os.urandom(64))
    assert noise.closed_by_peer()
    huge = Raw(port, "dubbo")
    huge.send(b"\xda\xbb\xc2\x00" + struct.pack(">q", 3) + struct.pack(">I", 0x7FFFFFFF))   # 2 GiB declared
    ev = huge.read()
    assert (type(ev), ev.request_id, ev.status) == (dubbo.DubboResponse, 3, 40)
    assert "exceeds" in ev.error_message()
    assert huge.closed_by_peer()
    truncated = Raw(port, "dubbo")
    truncated.send(dubbo_request(rid=4)[:30])
    truncated.close()
    auto = Raw(m.port("auto"), "dubbo")
    auto.send(b"\x16\x03\x01\x00\x05hello")           # a TLS ClientHello is not something we proxy
    assert auto.closed_by_peer()
    good.send(dubbo_request(rid=2, args=("still here",)))
    ev = good.read()
    assert (ev.request_id, ev.status, ev.result().value) == (2, 20, "p:sayHello:still here")
    log = m.log()
    assert "malformed dubbo stream" in log and "exceeds" in log and "unrecognised protocol" in log


def test_unsupported_serialization(meshd_run, provider, loop_thread):
    p = provider("dubbo", "p")
    m = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": p.address}]}]))
    frame = bytearray(dubbo_request(rid=8))
    frame[2] = (frame[2] & 0xE0) | 6                   # claim fastjson: the body is unreadable to meshd
    raw = Raw(m.port("dubbo"), "dubbo")
    raw.send(bytes(frame))
    ev = raw.read()
    # status 40 in the caller's own serialization (a status-only body: only hessian2 can carry the text)
    assert (ev.request_id, ev.status, ev.serialization_id) == (8, 40, 6)
    deadline = time.monotonic() + 3
    while "serialization id 6 is not supported" not in m.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "serialization id 6 is not supported" in m.log()


def test_missed_heartbeats_close_the_connection_and_calls_fail_over(meshd_run, provider):
    mute, fine = provider("dubbo", "mute"), provider("dubbo", "fine")
    mute.script.ignore_heartbeats = True
    m = meshd_run(rpc_config([{"name": IFACE, "lb_policy": "round_robin", "heartbeat_interval": "100ms",
                           "heartbeat_misses": 2, "endpoints": [{"address": mute.address},
                                                                {"address": fine.address}]}],
                         [{"match": {"service": IFACE}, "route": {"cluster": IFACE, "retry_policy": {
                             "retry_on": "reset", "num_retries": 1, "retry_back_off": {"base_interval": "1ms"}}}}]))
    raw = Raw(m.port("dubbo"), "dubbo")
    for rid in (1, 2):
        raw.send(dubbo_request(rid=rid))
        assert raw.read().status == 20
    mute.script.delay = 30.0                           # an in-flight call stuck on the dying connection
    answers = {}
    deadline = time.monotonic() + 10
    for rid in range(10, 14):
        raw.send(dubbo_request(rid=rid))
    while len(answers) < 4 and time.monotonic() < deadline:
        ev = raw.read(timeout=10)
        answers[ev.request_id] = (ev.status, ev.result().value if ev.status == 20 else None)
    assert all(status == 20 and value.startswith("fine:") for status, value in answers.values()), answers
    assert mute.script.heartbeats >= 2
    assert "missed 2 heartbeats" in m.log()


def test_readonly_provider_gets_no_new_requests(meshd_run, provider, loop_thread):
    a, b = provider("dubbo", "a"), provider("dubbo", "b")
    m = meshd_run(rpc_config([{"name": IFACE, "lb_policy": "round_robin",
                           "endpoints": [{"address": a.address}, {"address": b.address}]}]))
    raw = Raw(m.port("dubbo"), "dubbo")
    servers = set()
    for rid in range(1, 5):
        raw.send(dubbo_request(rid=rid))
        servers.add(raw.read().result().value.split(":")[0])
    assert servers == {"a", "b"}
    loop_thread.call(a.readonly)
    time.sleep(0.3)
    for rid in range(10, 20):
        raw.send(dubbo_request(rid=rid))
        assert raw.read().result().value.startswith("b:")
    endpoint = next(e for e in m.admin_json("/clusters")["clusters"][0]["endpoints"] if e["address"] == a.address)
    assert endpoint["draining"] is True and endpoint["healthy"] is False


def test_routing_keys_version_group_and_attachments(meshd_run, provider):
    v1, v2, g = provider("dubbo", "v1"), provider("dubbo", "v2"), provider("dubbo", "gray")
    m = meshd_run(rpc_config(
        [{"name": IFACE, "endpoints": [
            {"address": v1.address, "metadata": {"version": "1.0.0"}},
            {"address": v2.address, "metadata": {"version": "2.0.0"}},
            {"address": g.address, "metadata": {"version": "1.0.0", "group": "g1"}}]},
         {"name": "tagged", "endpoints": [{"address": g.address}]}],
        [{"match": {"service": IFACE, "headers": [{"name": "dubbo.tag", "exact": "gray"}]},
          "route": {"cluster": "tagged"}},
         {"match": {"service": IFACE, "method": {"regex": "say.*"}}, "route": {"cluster": IFACE}}]))
    raw = Raw(m.port("dubbo"), "dubbo")

    def who(rid, **kw):
        raw.send(dubbo_request(rid=rid, **kw))
        return raw.read().result().value.split(":")[0]

    assert {who(i) for i in range(6)} == {"v1"}, "version 1.0.0 and no group: only v1"
    assert {who(i, attachments={"group": "g1"}) for i in range(6)} == {"gray"}
    assert who(20, attachments={"dubbo.tag": "gray"}) == "gray"
    raw.send(dubbo.encode_request(30, IFACE, "sayHello", ["x"], param_types=["java.lang.String"], version="2.0.0"))
    assert raw.read().result().value.startswith("v2:")


def test_one_address_exporting_two_versions_serves_both(meshd_run, provider):
    both, only_v2 = provider("dubbo", "both"), provider("dubbo", "v2only")
    m = meshd_run(rpc_config([{"name": IFACE, "lb_policy": "round_robin", "endpoints": [
        {"address": both.address, "metadata": {"version": "1.0.0"}},
        {"address": both.address, "metadata": {"version": "2.0.0"}},
        {"address": only_v2.address, "metadata": {"version": "2.0.0"}}]}]))
    raw = Raw(m.port("dubbo"), "dubbo")

    def who(rid, version):
        raw.send(dubbo.encode_request(rid, IFACE, "sayHello", ["x"], param_types=["java.lang.String"],
                                      version=version))
        return raw.read().result().value.split(":")[0]

    assert {who(i, "1.0.0") for i in range(6)} == {"both"}
    assert {who(i, "2.0.0") for i in range(10, 16)} == {"both", "v2only"}
    keys = sorted(e.get("instance", "") for e in m.admin_json("/clusters")["clusters"][0]["endpoints"])
    assert keys == ["", "/1.0.0", "/2.0.0"]


def test_non_hessian_frames_are_forwarded_untouched_on_a_catch_all_route(meshd_run, loop_thread):
    import asyncio

    seen: list[bytes] = []

    class Echo(asyncio.Protocol):
        """A provider in fastjson (serialization 6): answers each request with a fixed JSON body."""

        def connection_made(self, transport):
            self.transport, self.buf = transport, b""

        def data_received(self, data):
            self.buf += data
            while len(self.buf) >= 16:
                length = struct.unpack_from(">I", self.buf, 12)[0]
                if len(self.buf) < 16 + length:
                    return
                frame, self.buf = self.buf[:16 + length], self.buf[16 + length:]
                seen.append(frame)
                body = b'"ok from fastjson"'
                self.transport.write(b"\xda\xbb\x06\x14" + frame[4:12] + struct.pack(">I", len(body)) + body)

    async def serve():
        return await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)

    server = loop_thread.run(serve())
    port = server.sockets[0].getsockname()[1]
    try:
        m = meshd_run(rpc_config([{"name": "json-provider", "endpoints": [{"address": f"127.0.0.1:{port}"}]}],
                                 [{"match": {}, "route": {"cluster": "json-provider"}}]))
        frame = bytearray(dubbo_request(rid=55))
        frame[2] = (frame[2] & 0xE0) | 6
        raw = Raw(m.port("dubbo"), "dubbo")
        raw.send(bytes(frame))
        ev = raw.read()
        assert (ev.request_id, ev.status, ev.serialization_id) == (55, 20, 6)
        assert bytes(ev.frame[16:]) == b'"ok from fastjson"'
        assert seen and seen[0][16:] == bytes(frame[16:]), "the body reached the provider byte for byte"
    finally:
        loop_thread.call(server.close)


def test_auto_listener_serves_http_and_dubbo_on_one_port(meshd_run, provider, http_backend):
    p, b = provider("dubbo", "p"), http_backend("web")
    config = {
        "listeners": [{"name": "auto", "address": "127.0.0.1:0", "protocol": "auto", "route_config": "mixed"}],
        "route_configs": [{"name": "mixed", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "web"}},
            {"match": {"service": IFACE}, "route": {"cluster": "rpc"}}]}]}],
        "clusters": [{"name": "web", "endpoints": [{"address": b.address}]},
                     {"name": "rpc", "endpoints": [{"address": p.address}]}],
    }
    m = meshd_run(config)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", m.port("auto"), timeout=5)
    conn.request("GET", "/hello")
    resp = conn.getresponse()
    assert resp.status == 200 and b'"server": "web"' in resp.read()
    raw = Raw(m.port("auto"), "dubbo")
    raw.send(dubbo_request(rid=3))
    assert raw.read().result().value == "p:sayHello:x"


def test_auto_listener_counts_each_protocol_to_one_cluster_apart(meshd_run):
    config = {
        "listeners": [{"name": "auto", "address": "127.0.0.1:0", "protocol": "auto", "route_config": "one"}],
        "route_configs": [{"name": "one", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "gone"}},
            {"match": {"service": IFACE}, "route": {"cluster": "gone"}}]}]}],
        "clusters": [{"name": "gone", "endpoints": [{"address": f"127.0.0.1:{free_port()}"}]}],  # nobody listens
    }
    m = meshd_run(config)
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", m.port("auto"), timeout=5)
    conn.request("GET", "/hello")
    assert conn.getresponse().status == 502                  # connect failure
    raw = Raw(m.port("auto"), "dubbo")
    raw.send(dubbo_request(rid=4))
    assert raw.read().status != 20                     # not OK: nobody listens
    prom = m.admin("/stats/prometheus")[1]
    labels = {line.split("}")[0] for line in prom.splitlines() if line.startswith("meshd_requests_total{")}
    protocols = {part.split('"')[1] for label in labels for part in label.split(",") if part.startswith("protocol=")}
    assert protocols == {"http", "dubbo"}, labels
    assert all('cluster="gone"' in label for label in labels), labels


def rpc_paths(m, listener: str) -> dict[str, float]:
    prom = m.admin("/stats/prometheus")[1]
    found = re.findall(rf'meshd_rpc_requests_total{{listener="{listener}",path="(\w+)"}} ([0-9.]+)', prom)
    return {path: float(n) for path, n in found}


@pytest.mark.parametrize("access_log", [False, True])
def test_the_path_each_rpc_request_took_is_counted(meshd_run, provider, tmp_path, access_log):
    p = provider("dubbo", "p")
    config = rpc_config([{"name": IFACE, "endpoints": [{"address": p.address}]}])
    config["access_log"] = {"path": str(tmp_path / "access.log") if access_log else None}
    m = meshd_run(config)
    raw = Raw(m.port("dubbo"), "dubbo")
    for rid in range(20):
        raw.send(dubbo_request(rid=rid))
        assert raw.read().result().value == "p:sayHello:x"
    # with the access log on or off, the first request leaves the plan the others follow
    assert rpc_paths(m, "dubbo") == {"common": 19, "other": 1}
    assert rpc_paths(m, "bolt") == {"common": 0, "other": 0}
    # ... on the compiled hot path, or on its source when this run asked for it (MESHD_PURE=1, meshd/compiled.py)
    hot = "pure" if compiled.pure_requested() else "compiled"
    assert re.search(rf'meshd_build_info{{hot_path="{hot}",version="[^"]+"}} 1.0', m.admin("/stats/prometheus")[1])


def test_bolt_v2_with_crc_is_forwarded_and_answered_in_kind(meshd_run, provider):
    p = provider("bolt", "v2")
    m = meshd_run(rpc_config([{"name": IFACE, "endpoints": [{"address": p.address}]}]))
    raw = Raw(m.port("bolt"), "bolt")
    raw.send(bolt.encode_request(31, f"{IFACE}:1.0", "echo", ["crc"], arg_types=["java.lang.String"],
                                 version=2, ver1=2, crc=True))
    ev = raw.read()
    assert (type(ev), ev.request_id, ev.version, ev.crc, ev.status) == (bolt.BoltResponse, 31, 2, True, 0)
    assert ev.sofa_response().app_response == "v2:echo:crc"
