"""The RPC hot path's shortcuts give the answers the long way gives: the Dubbo head cache, and the
multiplexed pool's one-connection-per-batch choice."""

from __future__ import annotations

import asyncio

from integration.transport import FakeTransport
from meshd import writebatch
from meshd.codec import dubbo
from meshd.codec.dubbo.decoder import DubboDecoder
from meshd.config import build_config
from meshd.proxy.rpc_protocols import DubboAdapter


def _event(service: str, method: str, version: str | None, param_types: list[str]):
    dec = DubboDecoder(1 << 20)
    dec.receive_data(dubbo.encode_request(1, service, method, ["x"] * len(param_types), param_types=param_types,
                                          version=version))
    return dec.next_event()


def test_dubbo_head_cache_answers_what_the_decoder_reads():
    adapter = DubboAdapter()
    heads = [("org.example.A", "hello", "1.0.0", ["java.lang.String"]),
             ("org.example.A", "hello", "1.0.0", ["java.lang.String", "java.lang.String"]),  # 5th string differs
             ("org.example.A", "hello", "1.0.1", ["java.lang.String"]),
             ("org.example.A", "hell", "1.0.0", ["java.lang.String"]),
             ("org.example.AB", "hello", None, ["java.lang.String"]),
             ("org.example.Ä", "hello", "1.0.0", ["java.lang.String"])]                    # not ASCII: not cached
    for round_ in range(3):                  # first sight, then the dict, then the last-head shortcut
        for service, method, version, types in heads + heads[::-1]:
            for _ in range(2):
                ev = _event(service, method, version, types)
                view = adapter.view(ev)
                head = ev.head()
                assert (view.service, view.method, view.version) == \
                       (head.service, head.method, head.version or ""), (round_, service, method, version, types)


async def _pool_with_two_connections():
    from meshd.app import Meshd
    from meshd.upstream.mux import MuxConnection, MuxPool
    app = Meshd(build_config({
        "admin": {"address": "127.0.0.1:0"}, "access_log": {"path": None},
        "listeners": [{"name": "rpc", "address": "127.0.0.1:0", "protocol": "dubbo"}],
        "clusters": [{"name": "c", "connections_per_endpoint": 2, "endpoints": [{"address": "127.0.0.1:9"}]}]}))
    await app.start()
    cluster = app.clusters.get("c")
    pool = MuxPool(cluster.hosts["127.0.0.1:9"], cluster, DubboAdapter())
    for _ in range(2):
        conn = MuxConnection(pool)
        conn.connection_made(FakeTransport())
        pool.conns.append(conn)
    return app, pool


class _Waiter:
    def __init__(self) -> None:
        self.conn = None

    def upstream_ready(self, conn) -> None:
        self.conn = conn
        conn.inflight[id(self)] = self


def test_mux_pool_sends_one_batch_down_one_connection_and_spreads_batches():
    async def run():
        app, pool = await _pool_with_two_connections()
        try:
            used = []
            for _ in range(4):
                writebatch.begin()
                waiters = [_Waiter() for _ in range(5)]
                for w in waiters:
                    pool.acquire(w)
                writebatch.end()
                assert len({w.conn for w in waiters}) == 1, "one read's requests share one connection"
                used.append(waiters[0].conn)
            assert used[0] is not used[1] and used[0] is used[2] and used[1] is used[3], \
                "each batch takes the least loaded connection"
            # outside a batch (a retry timer, say) every request takes the least loaded connection
            used[1].inflight.clear()
            loose = [_Waiter() for _ in range(2)]
            for w in loose:
                pool.acquire(w)
            assert loose[0].conn is used[1] and loose[1].conn is used[1]
            # a connection that stops being usable mid-batch is not used for the rest of the batch
            writebatch.begin()
            first, second = _Waiter(), _Waiter()
            pool.acquire(first)
            first.conn.draining = True
            pool.acquire(second)
            writebatch.end()
            assert second.conn is not first.conn and second.conn.usable
        finally:
            await app.stop()

    asyncio.run(run())
