"""Real clients (apache-dubbo-js, sofa-rpc-node) against a tiny server built only from meshd's codecs.

The server sniffs each connection (``meshd.codec.sniff``), decodes with the matching decoder and answers
with our encoders: normal answers, and the synthesized errors of docs/protocols.md §5 (``reject``). This is
what the proxy will send downstream; here the real clients prove they accept it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

import pytest

from meshd.codec import bolt, dubbo
from meshd.codec.base import NEED_DATA, CodecError
from meshd.codec.hessian2 import JavaObject
from meshd.codec.outcome import Outcome
from meshd.codec.sniff import BOLT, DUBBO, MATCH, NEED_MORE, sniff

pytestmark = pytest.mark.peers

Handler = Callable[[str, Any], "bytes | None"]


class CodecServer:
    """Loopback server in a thread: sniff → decode → ``handler(protocol, event)`` → bytes to send (or None)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._conn, "127.0.0.1", 0), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        prefix = b""
        while (result := sniff(prefix, (DUBBO, BOLT))).status is NEED_MORE:
            chunk = await reader.read(64)
            if not chunk:
                writer.close()
                return
            prefix += chunk
        if result.status is not MATCH:
            writer.close()
            return
        decoder = dubbo.DubboDecoder() if result.protocol == DUBBO else bolt.BoltDecoder()
        data = prefix
        try:
            while data:
                decoder.receive_data(data)
                out = bytearray()
                while (ev := decoder.next_event()) is not NEED_DATA:
                    self.seen.append((result.protocol, ev))
                    answer = self.handler(result.protocol, ev)
                    if answer:
                        out += answer
                if out:
                    writer.write(bytes(out))      # one write per batch of events
                data = await reader.read(65536)
        except CodecError:
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def codec_server():
    servers: list[CodecServer] = []

    def start(handler: Handler) -> CodecServer:
        servers.append(CodecServer(handler))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


BLOCK_DETAIL = "flow control blocked (resource=org.example.DemoService:sayHello, type=BlockTypeFlowControl)"


def test_apache_dubbo_js_reads_our_value_answers(codec_server, node_script):
    def handler(proto: str, ev: Any) -> bytes | None:
        if isinstance(ev, dubbo.DubboRequest):
            inv = ev.invocation()
            name, n = inv.args
            return dubbo.encode_response(ev.request_id, f"meshd says hi {name} x{n}",
                                         attachments={"dubbo": "2.0.2"})
        return None

    srv = codec_server(handler)
    lines = node_script("dubbo_consumer", "--address", f"127.0.0.1:{srv.port}", "--count", "3", "--concurrency", "3")
    results = [o for o in lines if o["event"] == "result"]
    assert [r["ok"] for r in results] == [True] * 3
    assert {r["value"] for r in results} == {"meshd says hi world x7"}
    assert all(p == DUBBO for p, _ in srv.seen)


def test_apache_dubbo_js_sees_our_synthesized_error(codec_server, node_script):
    def handler(proto: str, ev: Any) -> bytes | None:
        if isinstance(ev, dubbo.DubboRequest):
            return dubbo.reject(ev, Outcome.BLOCKED, BLOCK_DETAIL)
        return None

    srv = codec_server(handler)
    lines = node_script("dubbo_consumer", "--address", f"127.0.0.1:{srv.port}", "--timeout", "5000")
    (result,) = [o for o in lines if o["event"] == "result"]
    assert result["ok"] is False
    # apache-dubbo-js turns any non-20 status into an error carrying the raw hessian2 body
    assert f"meshd: {BLOCK_DETAIL}" in result["error"]["message"]
    assert "timeout" not in result["error"]["message"]


def test_sofa_rpc_node_reads_our_value_answers(codec_server, node_script):
    def handler(proto: str, ev: Any) -> bytes | None:
        if isinstance(ev, bolt.BoltRequest):
            head = ev.head()
            a, b = ev.sofa_request().args
            return bolt.encode_response(ev.request_id, JavaObject("com.example.Sum", {
                "sum": a + b, "method": head.method, "service": head.service}))
        return None

    srv = codec_server(handler)
    lines = node_script("bolt_client", "--address", f"127.0.0.1:{srv.port}", "--count", "4", "--concurrency", "2",
                        "--connections", "2")
    results = [o for o in lines if o["event"] == "result"]
    assert [r["ok"] for r in results] == [True] * 4
    assert results[0]["value"] == {"sum": 3, "method": "add", "service": "com.example.Calc:1.0"}
    assert {p for p, _ in srv.seen} == {BOLT}


@pytest.mark.parametrize("outcome,status", [(Outcome.BLOCKED, 4), (Outcome.TIMEOUT, 7), (Outcome.NO_ROUTE, 6)])
def test_sofa_rpc_node_sees_our_status_only_errors(codec_server, node_script, outcome, status):
    def handler(proto: str, ev: Any) -> bytes | None:
        return bolt.reject(ev, outcome) if isinstance(ev, bolt.BoltRequest) else None

    srv = codec_server(handler)
    lines = node_script("bolt_client", "--address", f"127.0.0.1:{srv.port}", "--timeout", "5000")
    (result,) = [o for o in lines if o["event"] == "result"]
    assert result["ok"] is False
    # the client failed on our answer (a status-only response carries no message), not on its own timer
    assert "Server exception when invoke with callback" in result["error"]["message"]
    (_, req), = srv.seen
    assert bolt.reject(req, outcome)[10:12] == status.to_bytes(2, "big")


def test_one_port_serves_both_protocols_by_sniffing(codec_server, node_script):
    def handler(proto: str, ev: Any) -> bytes | None:
        if isinstance(ev, dubbo.DubboRequest):
            return dubbo.encode_response(ev.request_id, "dubbo ok")
        if isinstance(ev, bolt.BoltRequest):
            return bolt.encode_response(ev.request_id, "bolt ok")
        return None

    srv = codec_server(handler)
    d = [o for o in node_script("dubbo_consumer", "--address", f"127.0.0.1:{srv.port}") if o["event"] == "result"]
    b = [o for o in node_script("bolt_client", "--address", f"127.0.0.1:{srv.port}") if o["event"] == "result"]
    assert d[0]["value"] == "dubbo ok" and b[0]["value"] == "bolt ok"
    assert {p for p, _ in srv.seen} == {DUBBO, BOLT}
