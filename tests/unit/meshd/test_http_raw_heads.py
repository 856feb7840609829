"""HTTP heads forwarded as received: a head that arrived whole at the start of a read is sent on as the
same bytes, and must be exactly what the head rebuilt from its parsed headers would have been.

A real Meshd app routes; the client and provider connections are in-process transports. Each request is
sent twice, once in one read (the head may go as received) and once a few bytes per read (the head is
always rebuilt), and both must put the same bytes on the wire both ways: hop-by-hop headers and meshd's
own deadline headers taken out, the route's edits applied, everything else kept in order and case.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration.transport import FakeTransport
from meshd import writebatch
from meshd.codec import http1
from meshd.config import build_config
from meshd.proxy.http import HttpDownstream
from meshd.upstream.http import HttpPool, UpstreamHttpConnection

DROPPED = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect",
           "x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms"}
RESPONSE_DROPPED = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"}


class Rig:
    """One HTTP listener; one cluster of one provider reached over one in-process keep-alive connection."""

    def __init__(self, app: Any) -> None:
        self.app = app
        cluster = app.clusters.get("b")
        host = cluster.hosts["127.0.0.1:9"]
        pool = host.pools["http"] = HttpPool(host, cluster)
        self.up = UpstreamHttpConnection(pool)
        self.up.connection_made(FakeTransport())
        pool.state.idle.append(self.up)
        cluster.connections += 1
        self.down = HttpDownstream(app.listeners[0].ctx)
        self.down.connection_made(FakeTransport())

    @classmethod
    async def start(cls, match: dict | None = None, **route: Any) -> "Rig":
        from meshd.app import Meshd
        app = Meshd(build_config({
            "admin": {"address": "127.0.0.1:0"}, "access_log": {"path": None},
            "listeners": [{"name": "h", "address": "127.0.0.1:0", "protocol": "http", "route_config": "r"}],
            "route_configs": [{"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                {"match": match or {"prefix": "/"}, "route": {"cluster": "b"}, **route}]}]}],
            "clusters": [{"name": "b", "endpoints": [{"address": "127.0.0.1:9"}]}],
        }))
        await app.start()
        return cls(app)

    async def stop(self) -> None:
        await self.app.stop()

    def exchange(self, request: bytes, response: bytes, step: int) -> tuple[bytes, bytes]:
        """``request`` from the client and ``response`` from the provider, ``step`` bytes per read (0: one
        read each): what the provider received and what the client received."""
        for data, proto in ((request, self.down), (response, self.up)):
            for i in range(0, len(data), step or len(data)):
                proto.data_received(data[i:i + (step or len(data))])
                writebatch.flush()            # what the loop writes at the end of each iteration
        sent, got = b"".join(self.up.transport.out), b"".join(self.down.transport.out)
        self.up.transport.out.clear()
        self.down.transport.out.clear()
        return sent, got


_NAME = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ-_0123456789"), min_size=1, max_size=12)
_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=24)
_DROPPED_NAMES = st.sampled_from(sorted(DROPPED - {"expect", "connection"}) + ["Keep-Alive", "TE"])
_HEADERS = st.lists(st.one_of(st.tuples(_NAME, _VALUE),
                              st.tuples(_DROPPED_NAMES, st.sampled_from(["1", "500", "trailers", "timeout=5"]))),
                    max_size=8)


def _head(first: str, headers: list[tuple[str, str]]) -> bytes:
    return (first + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n").encode()


def _kept(headers: list[tuple[str, str]], dropped: set[str]) -> list[tuple[str, str]]:
    return [(n, v) for n, v in headers if n.lower() not in dropped]


def _usable(headers: list[tuple[str, str]]) -> bool:
    names = {n.lower() for n, _ in headers}
    return not names & {"host", "content-length", "transfer-encoding"}


def test_a_head_goes_on_as_received_exactly_when_rebuilding_it_gives_the_same_bytes(monkeypatch):
    taken = {"request": 0, "response": 0}
    real = http1.whole_head

    def counted(data: bytes, headers: int, start: bytes, first_line: int = -1) -> bytes | None:
        head = real(data, headers, start, first_line)
        if head is not None:
            taken["response" if start == b"HTTP/1.1 " else "request"] += 1
        return head
    monkeypatch.setattr(http1, "whole_head", counted)          # counts, and answers what it answers
    monkeypatch.setattr("meshd.upstream.http.whole_head", counted)

    async def run():
        rig = await Rig.start()
        try:
            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(method=st.sampled_from(["GET", "POST", "DELETE"]), path=st.from_regex(r"/[a-z0-9/?=&]{0,20}",
                                                                                           fullmatch=True),
                   headers=_HEADERS, body=st.binary(max_size=40), response_headers=_HEADERS,
                   response_body=st.binary(max_size=40), step=st.integers(1, 7))
            def check(method, path, headers, body, response_headers, response_body, step):
                if not (_usable(headers) and _usable(response_headers)):
                    return
                length = [("Content-Length", str(len(body)))] if method == "POST" else []
                request = _head(f"{method} {path} HTTP/1.1", [("Host", "svc"), *headers, *length])
                request += body if method == "POST" else b""
                response = _head("HTTP/1.1 200 OK", [*response_headers, ("Content-Length", str(len(response_body)))])
                response += response_body
                whole = rig.exchange(request, response, 0)
                split = rig.exchange(request, response, step)
                assert whole == split
                want_up = _head(f"{method} {path} HTTP/1.1", [("Host", "svc"), *_kept(headers, DROPPED), *length])
                assert whole[0] == want_up + (body if method == "POST" else b"")
                want_down = _head("HTTP/1.1 200 OK", [*_kept(response_headers, RESPONSE_DROPPED),
                                                     ("Content-Length", str(len(response_body)))])
                assert whole[1] == want_down + response_body
            check()
            assert taken["request"] >= 10 and taken["response"] >= 10, f"heads sent as received: {taken}"
            assert rig.down.ctx.records["http"]["b"].counts[("ok", 200)] > 100
        finally:
            await rig.stop()
    asyncio.run(run())


def test_route_edits_apply_to_heads_sent_as_received_and_to_rebuilt_ones():
    async def run():
        appending = await Rig.start(request_headers_to_add=[{"header": {"key": "x-mesh", "value": "1"}}],
                                    response_headers_to_add=[{"header": {"key": "x-served-by", "value": "meshd"}}])
        replacing = await Rig.start(request_headers_to_add=[{"header": {"key": "x-a", "value": "new"},
                                                              "append": False}],
                                    request_headers_to_remove=["x-b"], response_headers_to_remove=["server"])
        request = _head("GET /e HTTP/1.1", [("Host", "svc"), ("X-A", "old"), ("X-B", "gone"), ("X-C", "kept")])
        response = _head("HTTP/1.1 200 OK", [("Server", "up"), ("Content-Length", "2")]) + b"ok"
        try:
            for step in (0, 3):
                sent, got = appending.exchange(request, response, step)
                assert sent == request[:-2] + b"x-mesh: 1\r\n\r\n"
                assert got == response[:-4] + b"x-served-by: meshd\r\n\r\nok"
                sent, got = replacing.exchange(request, response, step)
                assert sent == _head("GET /e HTTP/1.1", [("Host", "svc"), ("X-C", "kept"), ("x-a", "new")])
                assert got == _head("HTTP/1.1 200 OK", [("Content-Length", "2")]) + b"ok"
        finally:
            await appending.stop()
            await replacing.stop()
    asyncio.run(run())


def test_pipelined_requests_in_one_read_each_reach_the_provider_unchanged():
    async def run():
        rig = await Rig.start()
        try:
            first = _head("GET /1 HTTP/1.1", [("Host", "svc"), ("A", "1")])
            second = _head("GET /2 HTTP/1.1", [("Host", "svc"), ("B", "2")])
            response = _head("HTTP/1.1 200 OK", [("Content-Length", "1")]) + b"x"
            rig.down.data_received(first + second)          # the second head does not start its read
            writebatch.flush()
            assert b"".join(rig.up.transport.out) == first and rig.down.queue, "the second waits its turn"
            rig.up.transport.out.clear()
            rig.up.data_received(response)
            writebatch.flush()
            assert b"".join(rig.up.transport.out) == second
            rig.up.data_received(response)
            writebatch.flush()
            assert b"".join(rig.down.transport.out) == response * 2
        finally:
            await rig.stop()
    asyncio.run(run())


def test_http_1_0_and_chunked_messages_are_rebuilt():
    async def run():
        rig = await Rig.start()
        try:
            old = _head("GET /old HTTP/1.0", [("Host", "svc")])
            chunked = _head("HTTP/1.1 200 OK", [("Transfer-Encoding", "chunked")]) + b"2\r\nok\r\n0\r\n\r\n"
            sent, got = rig.exchange(old, chunked, 0)
            assert sent == _head("GET /old HTTP/1.1", [("Host", "svc")])
            assert got == _head("HTTP/1.1 200 OK", [("connection", "close")]) + b"ok", \
                "HTTP/1.0 client: the body is delimited by the close"
        finally:
            await rig.stop()
    asyncio.run(run())


def test_a_read_that_only_looks_like_the_start_of_a_message_is_not_taken_for_its_head():
    """The second read of a split head can begin with what a head begins with; it is rebuilt all the same."""
    async def run():
        rig = await Rig.start(match={"regex": ".*"})
        try:
            request = [b"GET ", b"GET://svc/x HTTP/1.1\r\nHost: svc\r\n\r\n"]            # the target: GET://svc/x
            response = [b"HTTP/1.1 200 OK\r\nX-A: ", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
            for part in request:
                rig.down.data_received(part)
                writebatch.flush()
            assert b"".join(rig.up.transport.out) == b"GET GET://svc/x HTTP/1.1\r\nHost: svc\r\n\r\n"
            for part in response:
                rig.up.data_received(part)
                writebatch.flush()
            assert b"".join(rig.down.transport.out) == \
                b"HTTP/1.1 200 OK\r\nX-A: HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        finally:
            await rig.stop()
    asyncio.run(run())
