"""The RPC common-case path (RpcDownstream's plans and FastCall) answers exactly what the general path
(RpcExchange) answers, leaves the same counters behind, and hands every uncommon event to RpcExchange.

A real Meshd app routes; its caller and provider connections are in-process transports, so every frame
that crosses them is visible. The general path is forced by taking the plans away (``fast_key`` → None).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from integration.transport import FakeTransport
from meshd.codec import bolt, dubbo
from meshd.codec.base import CLOSED
from meshd.config import build_config
from meshd.proxy.rpc import FastCall, RpcDownstream, RpcExchange
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

    def warm_then_send(self, *frames: bytes) -> None:
        """A first request teaches the listener the plan (and is answered); then one read of ``frames``."""
        self.send(_request(self.protocol, 1))
        self.answer(_mixed_reply(self.protocol))
        self.send(*frames)

    def inflight(self) -> list[Any]:
        return [x for up in self.ups.values() for x in up.inflight.values()]

    def answer(self, reply: Callable[[int, bytes], bytes], address: str = "127.0.0.1:9") -> int:
        """The provider at ``address`` answers everything in flight, in one read; ``reply(uid, request)``."""
        up = self.ups[address]
        sent = {ev.request_id: bytes(ev.frame) for ev in _decode(self.adapter, up.transport.out)}
        up.transport.out.clear()
        frames = [reply(uid, sent[uid]) for uid in list(up.inflight) if uid in sent]
        up.data_received(b"".join(frames))
        return len(frames)

    def replies(self) -> list[tuple]:
        """What the caller received: (request id, status, raw frame) per response."""
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


def _request(protocol: str, rid: int, method: str = "sayHello", *, timeout_attachment: bool = False,
             twoway: bool = True, bolt_timeout: int = 3000, method_header: bool = False, version: str = "1.0.0"):
    if protocol == "dubbo":
        att = {"application": "t", **({"timeout": "40"} if timeout_attachment else {})}
        return dubbo.encode_request(rid, IFACE, method, ["world"], param_types=["java.lang.String"],
                                    version=version, attachments=att, twoway=twoway)
    return bolt.encode_request(rid, f"{IFACE}:1.0", method, ["world"], arg_types=["java.lang.String"],
                               method_header=method_header, timeout=bolt_timeout, oneway=not twoway)


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


async def _traffic(rig: Rig, batches: int = 6, per_read: int = 8, **request: Any) -> tuple[list, list]:
    kinds = []
    rid = 0
    for _ in range(batches):
        frames = []
        for _ in range(per_read):
            rid += 1
            frames.append(_request(rig.protocol, rid, **request))
        rig.send(*frames)
        kinds += [type(x).__name__ for x in rig.inflight()]
        rig.answer(_mixed_reply(rig.protocol))
    return rig.replies(), kinds


@pytest.mark.parametrize("protocol,method_header", [("dubbo", False), ("bolt", False), ("bolt", True)])
def test_the_common_path_answers_and_counts_what_the_general_path_does(protocol, method_header, monkeypatch):
    async def run(fast: bool) -> tuple:
        with monkeypatch.context() as m:
            if not fast:
                m.setattr(ADAPTERS[protocol], "fast_key", lambda ev: None)
            rig = await Rig.start(protocol)
            try:
                replies, kinds = await _traffic(rig, method_header=method_header)
                return replies, kinds, rig.counters()
            finally:
                await rig.stop()

    fast_replies, fast_kinds, fast_counts = asyncio.run(run(True))
    slow_replies, slow_kinds, slow_counts = asyncio.run(run(False))
    assert fast_replies == slow_replies
    assert len(fast_replies) == 48 and [r[0] for r in fast_replies] == list(range(1, 49))
    assert fast_counts == slow_counts
    assert fast_counts["in_flight"] == 0 and fast_counts["active"] == 0
    assert set(slow_kinds) == {"RpcExchange"}
    assert fast_kinds.count("FastCall") == 47, "every request after the first takes the common path"


def test_a_fast_call_that_times_out_answers_in_protocol_and_drops_the_late_response():
    async def run():
        rig = await Rig.start("dubbo", route_configs=[{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
                              "routes": [{"match": {}, "route": {"cluster": IFACE, "timeout": "50ms"}}]}]}],
                              listener={"route_config": "r"})
        try:
            rig.warm_then_send(_request("dubbo", 2), _request("dubbo", 3))
            assert {type(x) for x in rig.inflight()} == {FastCall}
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


def test_a_provider_that_goes_away_fails_fast_calls_like_exchanges():
    async def run():
        rig = await Rig.start("bolt")
        try:
            rig.warm_then_send(_request("bolt", 2), _request("bolt", 3))
            assert {type(x) for x in rig.inflight()} == {FastCall}
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


def test_a_caller_that_goes_away_frees_its_fast_calls_upstream():
    async def run():
        rig = await Rig.start("dubbo")
        try:
            rig.warm_then_send(_request("dubbo", 2), _request("dubbo", 3))
            assert {type(x) for x in rig.inflight()} == {FastCall}
            rig.down.connection_lost(None)
            assert rig.inflight() == [], "the upstream slots are freed"
            assert rig.answer(lambda uid, req: dubbo.encode_response(uid, "late")) == 0
            counts = rig.counters()
            assert counts["in_flight"] == 0 and counts["active"] == 0
            assert counts["stats " + IFACE][0] == {("ok", 20): 1, ("DC", "-"): 2}
        finally:
            await rig.stop()
    asyncio.run(run())


def _kinds_after_warmup(protocol: str, request: dict | None = None, **config: Any) -> set[str]:
    async def run():
        rig = await Rig.start(protocol, **config)
        try:
            rig.send(_request(protocol, 1, **(request or {})))      # teaches the plan, if any
            rig.answer(_mixed_reply(protocol))
            rig.send(*(_request(protocol, rid, **(request or {})) for rid in (2, 3)))
            return {type(x).__name__ for x in rig.inflight()}
        finally:
            await rig.stop()
    return asyncio.run(run())


def _routes(route: dict) -> dict:
    return {"route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"],
                                                              "routes": [{"match": {}, "route": route}]}]}],
            "listener": {"route_config": "r"}}


@pytest.mark.parametrize("why,protocol,request_,config", [
    ("a retry policy", "dubbo", None, _routes({"cluster": IFACE, "retry_policy": {"retry_on": "reset"}})),
    ("route metadata", "dubbo", None, _routes({"cluster": IFACE, "metadata_match": {"zone": "a"}})),
    ("the request's own deadline", "dubbo", {"timeout_attachment": True}, {}),
    ("providers that declare versions", "dubbo", None,
     {"clusters": [{"name": IFACE, "endpoints": [{"address": "127.0.0.1:9", "metadata": {"version": "1.0.0"}}]}]}),
    ("governance", "dubbo", None, {"governance": {"flow": [{"resource": f"{IFACE}:sayHello", "threshold": 1e9}]}}),
    ("the access log", "bolt", None, {"access_log": {"path": "/dev/null"}}),
])
def test_requests_the_common_path_leaves_to_the_general_path(why, protocol, request_, config):
    kinds = _kinds_after_warmup(protocol, request_, **config)
    assert kinds <= {"RpcExchange"}, why


def test_a_full_cluster_overflows_on_the_general_path():
    async def run():
        rig = await Rig.start("bolt", clusters=[{"name": IFACE, "endpoints": [{"address": "127.0.0.1:9"}],
                                                 "circuit_breakers": {"max_requests": 1}}])
        try:
            rig.warm_then_send(_request("bolt", 2), _request("bolt", 3))
            assert [type(x) for x in rig.inflight()] == [FastCall]
            assert [(r[0], r[1]) for r in rig.replies()] == [(1, 0), (3, bolt.status.SERVER_THREADPOOL_BUSY)]
        finally:
            await rig.stop()
    asyncio.run(run())


def test_the_common_path_is_taken_without_those():
    assert _kinds_after_warmup("dubbo") == {"FastCall"}
    assert _kinds_after_warmup("bolt") == {"FastCall"}


def test_one_way_requests_take_the_general_path():
    async def run():
        rig = await Rig.start("dubbo")
        try:
            rig.warm_then_send(_request("dubbo", 2, twoway=False), _request("dubbo", 3))
            assert [type(x) for x in rig.inflight()] == [FastCall], "the one-way request is not waited for"
            assert len(rig.ups["127.0.0.1:9"].transport.out[-1]) > 0
            sent = _decode(rig.adapter, rig.ups["127.0.0.1:9"].transport.out)
            assert [ev.twoway for ev in sent] == [False, True], "sent in the order they came"
        finally:
            await rig.stop()
    asyncio.run(run())


def test_a_bolt_timeout_field_shortens_a_fast_calls_deadline():
    async def run():
        rig = await Rig.start("bolt")
        try:
            rig.warm_then_send(_request("bolt", 2, bolt_timeout=30), _request("bolt", 3))
            assert {type(x) for x in rig.inflight()} == {FastCall}
            await asyncio.sleep(0.1)
            assert [(r[0], r[1]) for r in rig.replies()] == [(1, 0), (2, bolt.status.TIMEOUT)]
            assert len(rig.inflight()) == 1, "the request with the route's 15 s deadline still waits"
        finally:
            await rig.stop()
    asyncio.run(run())


@pytest.mark.parametrize("protocol,method_header", [("dubbo", False), ("bolt", False), ("bolt", True)])
def test_plans_follow_the_head_request_by_request(protocol, method_header):
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
                    assert len(rig.ctx.rpc_plans) == 2
            assert sorted(r[0] for r in rig.replies()) == sorted(10 * r + i for r in range(3) for i in range(6))
        finally:
            await rig.stop()
    asyncio.run(run())


def test_a_promoted_call_keeps_its_deadline_and_its_view():
    async def run():
        rig = await Rig.start("dubbo", **_routes({"cluster": IFACE, "timeout": "50ms"}))
        try:
            rig.warm_then_send(_request("dubbo", 2))
            (call,) = rig.inflight()
            ex = call._promote()
            assert isinstance(ex, RpcExchange) and ex.timer is call and ex.view.method == "sayHello"
            assert rig.inflight() == [ex] and rig.down.active == {ex}
            await asyncio.sleep(0.12)
            assert [(r[0], r[1]) for r in rig.replies()] == [(1, 20), (2, 31)]
        finally:
            await rig.stop()
    asyncio.run(run())


def test_heads_that_never_repeat_fill_the_plan_table_once(monkeypatch):
    """Java SOFARPC puts per-request trace ids in the Bolt header map: no plan ever matches twice. The
    table stops growing at its limit and such requests keep taking the general path, answered right."""
    import meshd.proxy.rpc as rpc
    monkeypatch.setattr(rpc, "_PLAN_LIMIT", 4)
    monkeypatch.setattr(ADAPTERS["bolt"], "fast_key", _counting(ADAPTERS["bolt"].fast_key, calls := []))

    async def run():
        rig = await Rig.start("bolt")
        try:
            for rid in range(1, 11):
                rig.send(bolt.encode_request(rid, f"{IFACE}:1.0", "sayHello", ["w"], arg_types=["java.lang.String"],
                                             headers={"rpc_trace_context.sofaTraceId": f"trace-{rid}"}))
                rig.answer(_mixed_reply("bolt"))
            assert len(rig.ctx.rpc_plans) == 4
            assert len(calls) == 4, "no more keys are computed once the table is full"
            assert [r[0] for r in rig.replies()] == list(range(1, 11))
            assert rig.counters()["stats " + IFACE][1] == 10
        finally:
            await rig.stop()
    asyncio.run(run())


def _counting(fn: Callable, calls: list) -> Callable:
    def wrapped(ev: Any) -> Any:
        calls.append(ev)
        return fn(ev)
    return wrapped
