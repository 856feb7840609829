"""The one RPC path: a request whose routing key has a plan is forwarded by it (``common``) and answers
exactly what a request decoded and routed on its own (``other``) answers, with the same counters left
behind, whatever it carries: its own deadline, a retry policy, subsets, governance, the access log.

A real Meshd app routes; its caller and provider connections are in-process transports, so every frame
that crosses them is visible. Decoding every request is forced by taking the keys away (``route_key`` → None).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from integration.transport import FakeTransport
from meshd import writebatch
from meshd.codec import bolt, dubbo
from meshd.codec.base import CLOSED
from meshd.config import build_config
from meshd.proxy.rpc import RpcDownstream
from meshd.proxy.rpc_protocols import ADAPTERS

IFACE = "org.example.Demo"


def _decode(adapter: Any, chunks: list) -> list:
    """Every event in ``chunks`` (bytes as one stream)."""
    dec = adapter.decoder(1 << 20)
    dec.receive_data(b"".join(chunks))
    dec.receive_data(b"")                    # the end: events() ends with CLOSED
    out = []
    while (evs := dec.events())[-1:] != [CLOSED]:
        out += evs
    return out + evs[:-1]


class Rig:
    """One RPC listener, clusters of in-process providers (one connection each), one caller."""

    def __init__(self, app: Any, protocol: str) -> None:
        from meshd.upstream.mux import MuxConnection, MuxPool
        self.app, self.protocol, self.adapter = app, protocol, ADAPTERS[protocol]
        self.ctx = app.listeners[0].ctx
        self.ups: dict[str, Any] = {}                 # host address → its provider connection
        for cluster in app.clusters.clusters.values():
            for host in cluster.hosts.values():
                pool = host.pools[protocol] = MuxPool(host, cluster, self.adapter)
                conn = MuxConnection(pool)
                conn.connection_made(FakeTransport())
                pool.conns.append(conn)
                self.ups[host.address] = conn
        self.down = RpcDownstream(self.ctx, self.adapter)
        self.down.connection_made(FakeTransport())

    @classmethod
    async def start(cls, protocol: str = "dubbo", **config: Any) -> "Rig":
        from meshd.app import Meshd
        cfg: dict[str, Any] = {
            "admin": {"address": "127.0.0.1:0"}, "access_log": {"path": None},
            "listeners": [{"name": "rpc", "address": "127.0.0.1:0", "protocol": protocol,
                           **config.pop("listener", {})}],
            "clusters": config.pop("clusters", [{"name": IFACE, "endpoints": [{"address": "127.0.0.1:9"}]}]),
        }
        cfg.update(config)
        app = Meshd(build_config(cfg))
        await app.start()
        return cls(app, protocol)

    def send(self, *frames: bytes) -> None:
        """One read from the caller."""
        self.down.data_received(b"".join(frames))
        writebatch.flush()                    # what the loop does at the end of the read's iteration

    def warm_then_send(self, *frames: bytes) -> None:
        """A first request teaches the listener the plan (and is answered); then one read of ``frames``."""
        self.send(_request(self.protocol, 1))
        self.answer(_mixed_reply(self.protocol))
        self.send(*frames)

    def paths(self) -> list[int]:
        """meshd_rpc_requests_total{path=common,other} of the listener."""
        return list(self.ctx.rpc_paths)

    def inflight(self) -> list[Any]:
        return [x for up in self.ups.values() for x in up.inflight.values()]

    def answer(self, reply: Callable[[int, bytes], bytes], address: str = "127.0.0.1:9") -> int:
        """The provider at ``address`` answers everything in flight, in one read; ``reply(uid, request)``."""
        up = self.ups[address]
        sent = {ev.request_id: bytes(ev.frame) for ev in _decode(self.adapter, up.transport.out)}
        up.transport.out.clear()
        frames = [reply(uid, sent[uid]) for uid in list(up.inflight) if uid in sent]
        if frames:                            # b"" would be the provider closing its side
            up.data_received(b"".join(frames))
        writebatch.flush()
        return len(frames)

    def replies(self) -> list[tuple]:
        """What the caller received: (request id, status, raw frame) per response."""
        writebatch.flush()                    # what the loop writes at the end of this iteration
        return [(ev.request_id, ev.status, bytes(ev.frame)) for ev in _decode(self.adapter, self.down.transport.out)]

    def counters(self) -> dict:
        rt = self.app.runtime
        out: dict[str, Any] = {"in_flight": rt.in_flight, "active": len(self.down.active)}
        for name, cluster in sorted(self.app.clusters.clusters.items()):
            out[name] = (cluster.active_requests, dict(cluster.attempts), dict(cluster.retry_attempts),
                         sorted((h.address, h.active_requests, h.requests, h.errors) for h in cluster.hosts.values()))
        for by_cluster in self.ctx.records.values():        # one protocol per rig
            for name, rec in sorted(by_cluster.items()):
                out["stats " + name] = (dict(rec.counts), rec.total)
        return out

    async def stop(self) -> None:
        await self.app.stop()


def _request(protocol: str, rid: int, method: str = "sayHello", *, timeout_attachment: str | None = None,
             twoway: bool = True, bolt_timeout: int = 3000, method_header: bool = False, version: str = "1.0.0",
             java: bool = False):
    """``java``: the body a Java Dubbo 2.7 consumer sends (timeout, remote.application, a per-request
    traceparent), or the header map a Java SOFARPC caller sends (a unique sofaTraceId per request)."""
    if protocol == "dubbo":
        att = {"application": "t"}
        if java:
            att = {"path": IFACE, "interface": IFACE, "version": version, "application": "shop",
                   "remote.application": "shop", "timeout": "3000", "traceparent": f"00-{rid:032x}-{rid:016x}-01"}
        if timeout_attachment is not None:
            att["timeout"] = timeout_attachment
        return dubbo.encode_request(rid, IFACE, method, ["world"], param_types=["java.lang.String"],
                                    version=version, attachments=att, twoway=twoway)
    headers = None
    if java:
        method_header = True
        headers = {"sofa_head_target_service": f"{IFACE}:1.0", "sofa_head_target_app": "calc",
                   "rpc_trace_context.sofaTraceId": f"0a0fe8{rid:018d}", "rpc_trace_context.sofaRpcId": "0",
                   "rpc_trace_context.sofaCallerApp": "shop", "rpc_trace_context.sofaCallerIp": "10.0.0.1",
                   "rpc_trace_context.sofaPenAttrs": "", "rpc_trace_context.sysPenAttrs": ""}
    return bolt.encode_request(rid, f"{IFACE}:1.0", method, ["world"], arg_types=["java.lang.String"],
                               method_header=method_header, timeout=bolt_timeout, oneway=not twoway, headers=headers)


def _mixed_reply(protocol: str) -> Callable[[int, bytes], bytes]:
    """OK for most ids; an application exception and an error status for some (not the common case)."""
    def reply(uid: int, request: bytes) -> bytes:
        if protocol == "dubbo":
            if uid % 5 == 0:
                return dubbo.encode_response(uid, exception="boom")
            if uid % 7 == 0:
                return dubbo.encode_error_response(uid, 70, "service error")
            return dubbo.encode_response(uid, f"hello {uid}")
        if uid % 7 == 0:
            return bolt.encode_status_response(uid, 4)
        return bolt.encode_response(uid, f"hello {uid}")
    return reply


async def _traffic(rig: Rig, batches: int = 6, per_read: int = 8, **request: Any) -> list:
    rid = 0
    for _ in range(batches):
        frames = []
        for _ in range(per_read):
            rid += 1
            frames.append(_request(rig.protocol, rid, **request))
        rig.send(*frames)
        rig.answer(_mixed_reply(rig.protocol))
    return rig.replies()


@pytest.mark.parametrize("protocol,method_header,java", [("dubbo", False, False), ("bolt", False, False),
                                                         ("bolt", True, False), ("dubbo", False, True),
                                                         ("bolt", False, True)])
def test_the_common_path_answers_and_counts_what_decoding_every_request_does(protocol, method_header, java,
                                                                             monkeypatch):
    async def run(keyed: bool) -> tuple:
        with monkeypatch.context() as m:
            if not keyed:
                m.setattr(ADAPTERS[protocol], "route_key", lambda ev, names: None)
            rig = await Rig.start(protocol)
            try:
                replies = await _traffic(rig, method_header=method_header, java=java)
                return replies, rig.paths(), rig.counters()
            finally:
                await rig.stop()

    fast_replies, fast_paths, fast_counts = asyncio.run(run(True))
    slow_replies, slow_paths, slow_counts = asyncio.run(run(False))
    assert fast_replies == slow_replies
    assert len(fast_replies) == 48 and [r[0] for r in fast_replies] == list(range(1, 49))
    assert fast_counts == slow_counts
    assert fast_counts["in_flight"] == 0 and fast_counts["active"] == 0
    assert slow_paths == [0, 48]
    assert fast_paths == [47, 1], "every request after the first takes the common path"


def test_a_call_that_times_out_answers_in_protocol_and_drops_the_late_response():
    async def run():
        rig = await Rig.start("dubbo", **_routes({"cluster": IFACE, "timeout": "50ms"}))
        try:
            rig.warm_then_send(_request("dubbo", 2), _request("dubbo", 3))
            assert len(rig.inflight()) == 2 and rig.paths() == [2, 1]
            await asyncio.sleep(0.12)
            assert rig.inflight() == [], "the deadline freed the slots"
            assert rig.answer(lambda uid, req: dubbo.encode_response(uid, "late")) == 0
            replies = sorted(rig.replies())          # deadlines of one tick fire in no set order
            assert [(r[0], r[1]) for r in replies] == [(1, 20), (2, 31), (3, 31)]
            assert b"timeout" in replies[1][2]
            counts = rig.counters()
            assert counts["in_flight"] == 0 and counts["active"] == 0
            assert counts["stats " + IFACE][0] == {("ok", 20): 1, ("UT", "timeout"): 2}
        finally:
            await rig.stop()
    asyncio.run(run())


def test_a_provider_that_goes_away_fails_its_calls_in_protocol():
    async def run():
        rig = await Rig.start("bolt")
        try:
            rig.warm_then_send(_request("bolt", 2), _request("bolt", 3))
            assert len(rig.inflight()) == 2 and rig.paths() == [2, 1]
            rig.ups["127.0.0.1:9"].connection_lost(None)
            replies = rig.replies()
            assert [r[0] for r in replies] == [1, 2, 3]
            assert [r[1] for r in replies[1:]] != [0, 0], "the caller sees a failure, in Bolt"
            counts = rig.counters()
            assert counts["in_flight"] == 0 and counts["active"] == 0
            assert counts[IFACE][3] == [("127.0.0.1:9", 0, 3, 2)], "two failed attempts on the host"
        finally:
            await rig.stop()
    asyncio.run(run())


def test_a_caller_that_goes_away_frees_its_calls_upstream():
    async def run():
        rig = await Rig.start("dubbo")
        try:
            rig.warm_then_send(_request("dubbo", 2), _request("dubbo", 3))
            assert len(rig.inflight()) == 2
            rig.down.connection_lost(None)
            assert rig.inflight() == [], "the upstream slots are freed"
            assert rig.answer(lambda uid, req: dubbo.encode_response(uid, "late")) == 0
            counts = rig.counters()
            assert counts["in_flight"] == 0 and counts["active"] == 0
            assert counts["stats " + IFACE][0] == {("ok", 20): 1, ("DC", "-"): 2}
        finally:
            await rig.stop()
    asyncio.run(run())


def _paths_after_warmup(protocol: str, request: dict | None = None, **config: Any) -> list[int]:
    async def run():
        rig = await Rig.start(protocol, **config)
        try:
            rig.send(_request(protocol, 1, **(request or {})))      # leaves the plan, if any
            rig.answer(_mixed_reply(protocol))
            rig.send(*(_request(protocol, rid, **(request or {})) for rid in (2, 3)))
            assert len(rig.inflight()) == 2
            return rig.paths()
        finally:
            await rig.stop()
    return asyncio.run(run())


def _routes(route: dict, match: dict | None = None) -> dict:
    return {"route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
                                                              "routes": [{"match": match or {}, "route": route}]}]}],
            "listener": {"route_config": "r"}}


@pytest.mark.parametrize("why,protocol,request_,config", [
    ("nothing special", "dubbo", None, {}),
    ("nothing special", "bolt", None, {}),
    ("a retry policy", "dubbo", None, _routes({"cluster": IFACE, "retry_policy": {"retry_on": "reset"}})),
    ("route metadata", "dubbo", None, {**_routes({"cluster": IFACE, "metadata_match": {"zone": "a"}}), "clusters": [
        {"name": IFACE, "endpoints": [{"address": "127.0.0.1:9", "metadata": {"zone": "a"}}]}]}),
    ("the request's own deadline", "dubbo", {"timeout_attachment": "40"}, {}),
    ("the body a Java consumer sends", "dubbo", {"java": True}, {}),
    ("the header map a Java SOFARPC caller sends", "bolt", {"java": True}, {}),
    ("providers that declare versions", "dubbo", None,
     {"clusters": [{"name": IFACE, "endpoints": [{"address": "127.0.0.1:9", "metadata": {"version": "1.0.0"}}]}]}),
    ("governance", "dubbo", None, {"governance": {"flow": [{"resource": f"{IFACE}:sayHello", "threshold": 1e9}]}}),
    ("governance with a caller origin", "dubbo", {"java": True}, {"governance": {"dialect": "java", "flow": [
        {"resource": f"{IFACE}:sayHello", "count": 1e9, "limitApp": "shop"}]}}),
    ("the access log", "bolt", None, {"access_log": {"path": "/dev/null"}}),
    ("header_to_metadata on Bolt", "bolt", {"java": True}, {"listener": {"header_to_metadata": {
        "sofa_head_target_app": "app"}}, "clusters": [{"name": IFACE, "endpoints": [
            {"address": "127.0.0.1:9", "metadata": {"app": "calc"}}], "subset": {"request_metadata": True}}]}),
])
def test_ordinary_requests_take_the_common_path(why, protocol, request_, config):
    assert _paths_after_warmup(protocol, request_, **config) == [2, 1], why


def test_a_route_that_reads_attachments_routes_each_request_on_its_own():
    routes = _routes({"cluster": IFACE}, {"headers": [{"name": "application", "exact": "t"}]})
    assert _paths_after_warmup("dubbo", None, **routes) == [0, 3]


def test_a_full_cluster_overflows_in_protocol():
    async def run():
        rig = await Rig.start("bolt", clusters=[{"name": IFACE, "endpoints": [{"address": "127.0.0.1:9"}],
                                                 "circuit_breakers": {"max_requests": 1}}])
        try:
            rig.warm_then_send(_request("bolt", 2), _request("bolt", 3))
            assert len(rig.inflight()) == 1
            assert [(r[0], r[1]) for r in rig.replies()] == [(1, 0), (3, bolt.status.SERVER_THREADPOOL_BUSY)]
        finally:
            await rig.stop()
    asyncio.run(run())


def test_one_way_requests_have_plans_of_their_own():
    async def run():
        rig = await Rig.start("dubbo")
        try:
            rig.warm_then_send(_request("dubbo", 2, twoway=False), _request("dubbo", 3))
            rig.send(_request("dubbo", 4, twoway=False))
            assert len(rig.inflight()) == 1, "the one-way requests are not waited for"
            sent = _decode(rig.adapter, rig.ups["127.0.0.1:9"].transport.out)
            assert [ev.twoway for ev in sent] == [False, True, False], "sent in the order they came"
            assert rig.paths() == [2, 2] and len(rig.ctx.rpc_plans["dubbo"]) == 2
        finally:
            await rig.stop()
    asyncio.run(run())


@pytest.mark.parametrize("protocol", ["dubbo", "bolt"])
def test_the_callers_own_deadline_shortens_the_routes(protocol):
    async def run():
        rig = await Rig.start(protocol)
        short = {"timeout_attachment": "30"} if protocol == "dubbo" else {"bolt_timeout": 30}
        try:
            rig.warm_then_send(_request(protocol, 2, **short), _request(protocol, 3))
            assert rig.paths() == [2, 1]
            await asyncio.sleep(0.1)
            timeout = 31 if protocol == "dubbo" else bolt.status.TIMEOUT
            assert [(r[0], r[1]) for r in rig.replies()] == [(1, rig.adapter.ok_status), (2, timeout)]
            assert len(rig.inflight()) == 1, "the request with the route's 15 s deadline still waits"
        finally:
            await rig.stop()
    asyncio.run(run())


@pytest.mark.parametrize("protocol,method_header", [("dubbo", False), ("bolt", False), ("bolt", True)])
def test_plans_follow_the_routing_key_request_by_request(protocol, method_header):
    """Requests for two methods, interleaved in one read, each reach the cluster their method routes to."""
    async def run():
        rig = await Rig.start(protocol, route_configs=[{"name": "r", "virtual_hosts": [{
            "name": "all", "domains": ["*"], "routes": [
                {"match": {"method": "a"}, "route": {"cluster": "A"}},
                {"match": {"method": "b"}, "route": {"cluster": "B"}}]}]}],
            listener={"route_config": "r"},
            clusters=[{"name": "A", "endpoints": [{"address": "127.0.0.1:1"}]},
                      {"name": "B", "endpoints": [{"address": "127.0.0.1:2"}]}])
        try:
            for round_ in range(3):
                methods = ["a", "b", "b", "a", "a", "b"]
                rig.send(*(_request(protocol, 10 * round_ + i, m, method_header=method_header)
                           for i, m in enumerate(methods)))
                for address, method in (("127.0.0.1:1", "a"), ("127.0.0.1:2", "b")):
                    got = [ev.head().method for ev in _decode(rig.adapter, rig.ups[address].transport.out)]
                    assert got == [method] * 3, (round_, address, got)
                    rig.answer(_mixed_reply(protocol), address)
                if round_:
                    assert len(rig.ctx.rpc_plans[protocol]) == 2
            assert sorted(r[0] for r in rig.replies()) == sorted(10 * r + i for r in range(3) for i in range(6))
        finally:
            await rig.stop()
    asyncio.run(run())


def test_per_request_trace_ids_never_enter_the_routing_key():
    """Java SOFARPC puts a unique sofaTraceId in every header map: one plan serves them all."""
    async def run():
        rig = await Rig.start("bolt")
        try:
            for rid in range(1, 11):
                rig.send(_request("bolt", rid, java=True))
                rig.answer(_mixed_reply("bolt"))
            assert len(rig.ctx.rpc_plans["bolt"]) == 1
            assert rig.paths() == [9, 1]
            assert [r[0] for r in rig.replies()] == list(range(1, 11))
        finally:
            await rig.stop()
    asyncio.run(run())


# -- the production shapes of issue 18 --------------------------------------------------------------------
def _production(protocol: str, tmp_path: Any, **extra: Any) -> dict:
    """Two providers of version 1.0.0 and one of 2.0.0, a route with a timeout and a retry policy, a flow
    rule and an error-ratio breaker on both resources, the access log to a file."""
    method = f"{IFACE}:sayHello"
    meta = (lambda v: {"version": v}) if protocol == "dubbo" else (lambda v: {"version": "1.0" if v == "1.0.0" else v})
    config: dict[str, Any] = {
        "clusters": [{"name": IFACE, "endpoints": [
            {"address": "127.0.0.1:11", "metadata": meta("1.0.0")},
            {"address": "127.0.0.1:12", "metadata": meta("1.0.0")},
            {"address": "127.0.0.1:13", "metadata": meta("2.0.0")}]}],
        "access_log": {"path": str(tmp_path / "access.log")},
        "governance": {"flow": [{"resource": r, "threshold": 1e9} for r in (IFACE, method)],
                       "circuit_breaker": [{"resource": r, "strategy": 1, "threshold": 0.9, "minRequestAmount": 100,
                                            "statIntervalMs": 1000, "retryTimeoutMs": 1000} for r in (IFACE, method)]},
        **_routes({"cluster": IFACE, "timeout": "3s", "retry_policy": {
            "retry_on": "connect-failure,reset,overloaded", "num_retries": 2,
            "retry_back_off": {"base_interval": "1ms"}}}),
    }
    config.update(extra)
    return config


@pytest.mark.parametrize("protocol", ["dubbo", "bolt"])
def test_production_shaped_calls_take_the_common_path_to_the_right_providers(protocol, tmp_path):
    async def run():
        rig = await Rig.start(protocol, **_production(protocol, tmp_path))
        try:
            for batch in range(4):
                rig.send(*(_request(protocol, 8 * batch + i + 1, java=True) for i in range(8)))
                for address in ("127.0.0.1:11", "127.0.0.1:12", "127.0.0.1:13"):
                    rig.answer(lambda uid, req: _ok(protocol, uid), address)
            assert rig.paths() == [31, 1]
            hosts = {h.address: h.requests for h in rig.app.clusters.get(IFACE).hosts.values()}
            assert hosts["127.0.0.1:13"] == 0, "2.0.0 is never reached"
            assert hosts["127.0.0.1:11"] + hosts["127.0.0.1:12"] == 32 and min(hosts.values()) == 0 < \
                min(hosts["127.0.0.1:11"], hosts["127.0.0.1:12"])
            assert [r[0] for r in sorted(rig.replies())] == list(range(1, 33))
            assert {r[1] for r in rig.replies()} == {rig.adapter.ok_status}
            rig.app.access_log.flush()
            lines = (tmp_path / "access.log").read_text().splitlines()
            assert len(lines) == 32 and all(f"{IFACE}:sayHello" in line and " attempts=1" in line for line in lines)
            stats = rig.app.runtime.governance.sentinel.resource_stats(f"{IFACE}:sayHello")
            assert stats.pass_total == 32
        finally:
            await rig.stop()
    asyncio.run(run())


@pytest.mark.parametrize("per_pick,reads", [(16, ["X8", "Y8", "X8"]), (3, ["X5 Y3", "X3 Y5"]),
                                             (1, ["X4 Y4", "X4 Y4"])])
def test_one_pick_serves_a_run_of_one_reads_requests(per_pick, reads):
    # A pipelining caller's read leaves in one write per provider: requests_per_pick consecutive requests of
    # one route share a round-robin pick. X is the provider the first read's first request went to.
    async def run():
        rig = await Rig.start("dubbo", clusters=[{
            "name": IFACE, "requests_per_pick": per_pick,
            "endpoints": [{"address": "127.0.0.1:11"}, {"address": "127.0.0.1:12"}]}])
        try:
            rig.send(_request("dubbo", 1))                       # teaches the plan
            for address in rig.ups:
                rig.answer(_mixed_reply("dubbo"), address)
            hosts = rig.app.clusters.get(IFACE).hosts
            names: dict[str, str] = {}
            rid = 1
            for want in reads:
                before = {a: h.requests for a, h in hosts.items()}
                rig.send(*(_request("dubbo", rid + i + 1) for i in range(8)))
                if not names:
                    first = next(x.upstream_host.address for x in rig.inflight() if x.event.request_id == rid + 1)
                    names = {"X": first, "Y": next(a for a in hosts if a != first)}
                rid += 8
                writes = [len(up.transport.out) for up in rig.ups.values()]
                for address in rig.ups:
                    rig.answer(lambda uid, req: _ok("dubbo", uid), address)
                got = " ".join(f"{x}{hosts[a].requests - before[a]}" for x, a in sorted(names.items())
                               if hosts[a].requests - before[a])
                assert got == want
                assert max(writes) == 1, "one write per provider and read"
            assert rig.paths()[0] == 8 * len(reads)
        finally:
            await rig.stop()
    asyncio.run(run())


@pytest.mark.parametrize("protocol", ["dubbo", "bolt"])
def test_a_production_shaped_call_is_retried_on_the_other_provider_when_the_first_resets(protocol, tmp_path):
    async def run():
        rig = await Rig.start(protocol, **_production(protocol, tmp_path))
        try:
            rig.send(_request(protocol, 1, java=True))
            first = next(a for a, up in rig.ups.items() if up.inflight)
            rig.answer(lambda uid, req: _ok(protocol, uid), first)
            rig.send(_request(protocol, 2, java=True))    # round robin: the other 1.0.0 provider
            second = next(a for a, up in rig.ups.items() if up.inflight)
            assert rig.paths() == [1, 1] and {first, second} == {"127.0.0.1:11", "127.0.0.1:12"}
            rig.ups[second].connection_lost(None)
            await asyncio.sleep(0.05)                      # the back-off
            assert rig.answer(lambda uid, req: _ok(protocol, uid), first) == 1
            assert [(r[0], r[1]) for r in rig.replies()] == [(1, rig.adapter.ok_status), (2, rig.adapter.ok_status)]
            cluster = rig.app.clusters.get(IFACE)
            assert cluster.stats["retries"] == 1 and cluster.retry_attempts == {"ok": 1}
            rig.app.access_log.flush()
            assert (tmp_path / "access.log").read_text().splitlines()[-1].endswith("attempts=2")
        finally:
            await rig.stop()
    asyncio.run(run())


@pytest.mark.parametrize("protocol,blocked", [("dubbo", 100), ("bolt", bolt.status.SERVER_THREADPOOL_BUSY)])
def test_a_production_shaped_call_is_blocked_by_a_flow_rule_of_zero(protocol, blocked, tmp_path):
    async def run():
        config = _production(protocol, tmp_path)
        config["governance"]["flow"] = [{"resource": f"{IFACE}:sayHello", "threshold": 0}]
        rig = await Rig.start(protocol, **config)
        try:
            rig.send(*(_request(protocol, rid, java=True) for rid in (1, 2, 3)))
            assert rig.inflight() == [] and rig.paths() == [2, 1]
            assert [(r[0], r[1]) for r in rig.replies()] == [(1, blocked), (2, blocked), (3, blocked)]
            rig.app.access_log.flush()
            assert len((tmp_path / "access.log").read_text().splitlines()) == 3
        finally:
            await rig.stop()
    asyncio.run(run())


def _ok(protocol: str, uid: int) -> bytes:
    return dubbo.encode_response(uid, "ok") if protocol == "dubbo" else bolt.encode_response(uid, "ok")


@pytest.mark.parametrize("protocol,blocked", [("dubbo", 100), ("bolt", bolt.status.SERVER_THREADPOOL_BUSY)])
def test_the_requests_of_one_read_enter_governance_as_they_would_one_by_one(protocol, blocked):
    """A read of eight requests of one plan enters as one batch where the engine can say that changes
    nothing; at a threshold between, exactly the first requests pass, as entered one by one."""
    async def run():
        method = f"{IFACE}:sayHello"
        rig = await Rig.start(protocol, governance={"flow": [{"resource": method, "threshold": 12}],
                                                    "circuit_breaker": [{
                                                        "resource": IFACE, "strategy": 1, "threshold": 0.9,
                                                        "minRequestAmount": 100, "retryTimeoutMs": 1000,
                                                        "statIntervalMs": 60000}]})
        sentinel = rig.app.runtime.governance.sentinel
        batches: list = []
        real = sentinel.entry_batch

        def counted(resources, n):                          # answers what the engine answers
            entries = real(resources, n)
            batches.append(None if entries is None else len(entries))
            return entries
        sentinel.entry_batch = counted
        try:
            rig.send(*(_request(protocol, rid) for rid in range(1, 9)))
            assert len(rig.inflight()) == 8 and rig.paths() == [7, 1]
            assert sentinel.resource_stats(method).concurrency == 8
            rig.answer(lambda uid, req: _ok(protocol, uid))
            rig.send(*(_request(protocol, rid) for rid in range(11, 19)))    # 8 + 8 > 12: one by one
            assert len(rig.inflight()) == 4
            assert [r[1] for r in sorted(rig.replies())[8:]] == [blocked] * 4
            rig.answer(lambda uid, req: _ok(protocol, uid))
            for res in (IFACE, method):
                stats = sentinel.resource_stats(res)
                assert (stats.pass_total, stats.complete_total, stats.concurrency) == (12, 12, 0), res
            assert sentinel.resource_stats(method).block_total == {"BlockTypeFlowControl": 4}
            assert batches == [8, None], "the first read entered as one batch, the second one by one"
        finally:
            await rig.stop()
    asyncio.run(run())


@pytest.mark.parametrize("request_id", [1, 0x80, 0xFFFF, 2**31, 2**32 - 1, 2**32 + 7, 2**63 - 1, -1, -2**63])
@pytest.mark.parametrize("frame", [
    dubbo.encode_request(5, IFACE, "m", ["x"], param_types=["java.lang.String"]),
    bolt.encode_request(5, IFACE, "m", ["x"], arg_types=["java.lang.String"]),
    bolt.encode_request(5, IFACE, "m", ["x"], arg_types=["java.lang.String"], version=2, ver1=2, crc=True)],
    ids=["dubbo", "bolt-v1", "bolt-v2-crc"])
def test_the_id_patcher_writes_what_the_codec_writes(frame, request_id):
    # the adapters' patchers write header bytes as C integers when compiled; the codecs' struct writes are the
    # reference (Bolt ids are 32-bit: the patcher keeps the low 32 bits, a v2 frame's CRC is recomputed)
    protocol = "dubbo" if frame[:2] == b"\xda\xbb" else "bolt"
    codec = dubbo if protocol == "dubbo" else bolt
    want = bytearray(frame)
    codec.patch_request_id(want, request_id if protocol == "dubbo" else request_id & 0xFFFFFFFF)
    got = bytearray(frame)
    ADAPTERS[protocol].patch_id(got, request_id)
    assert got == want
