"""The test Nacos server and its control API, usable from asyncio or from blocking test code.

:class:`NacosServer` (async, runs on the caller's event loop)::

    server = NacosServer()
    await server.start()            # HTTP on 127.0.0.1:P, gRPC on 127.0.0.1:P+1000 (both free when picked)
    server.server_addr              # "127.0.0.1:P" — what clients are given; they add 1000 for gRPC
    await server.restart()          # stop and start on the same ports, *empty* (a real server restart)
    await server.go_away(3.0)       # connections cut, ports closed for 3 s, then back with the same state
    await server.wait_back()
    server.push_garbage("bad-json") # to every gRPC subscriber (kinds: bad-json, no-port, unknown-type)
    server.push_garbage_udp("bad-json")
    server.instances() / subscribers() / configs() / listeners() / connections()   # inspection
    server.register(...), server.deregister(...), server.publish_config(...)        # act as "another app"
    await server.stop()

:class:`BlockingNacosServer` wraps one on a :class:`integration.process.LoopThread` (every method blocks
until done on the loop thread), for fixtures and tests written without asyncio.

The server binds 127.0.0.1 only and sends UDP only to loopback. ``lastRefTime`` values come from one
:class:`~integration.nacos.model.RefClock` kept across restarts. Ephemeral v1 instances are checked for
expiry every ``expiry_check`` seconds (heartbeat timeout 15 s, ip-delete timeout 30 s, or the instance's
``preserved.heart.beat.timeout`` / ``preserved.ip.delete.timeout`` metadata in ms).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Awaitable, Callable, TypeVar

from integration.nacos.core import Core
from integration.nacos.grpc_server import GrpcFrontend, PushRecord
from integration.nacos.http_api import HttpFrontend
from integration.nacos.model import DEFAULT_CLUSTER, Instance, RefClock, namespace_of, split_service
from integration.ports import free_port

T = TypeVar("T")
GRPC_OFFSET = 1000
GARBAGE_KINDS = ("bad-json", "no-port", "unknown-type")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair(offset: int = GRPC_OFFSET, attempts: int = 50) -> int:
    """A port P with P and P + ``offset`` both free on 127.0.0.1."""
    for _ in range(attempts):
        port = free_port()
        if port + offset <= 65535 and _bindable(port + offset):
            return port
    raise RuntimeError(f"no free port pair (P, P+{offset}) found in {attempts} attempts")


class NacosServer:
    """See the module docstring."""

    def __init__(self, port: int | None = None, *, ability_negotiation: bool = True,
                 expiry_check: float = 0.5, push_timeout: float = 3.0) -> None:
        self.port = port or 0
        self.ability_negotiation = ability_negotiation
        self.expiry_check = expiry_check
        self.push_timeout = push_timeout
        self.clock = RefClock()
        self.core = Core(self.clock)
        self.grpc: GrpcFrontend | None = None
        self.http: HttpFrontend | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._back: asyncio.Task[None] | None = None
        self.pushes: list[PushRecord] = []   # gRPC pushes of all incarnations

    @property
    def grpc_port(self) -> int:
        return self.port + GRPC_OFFSET

    @property
    def server_addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.http is not None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "NacosServer":
        if not self.port:
            self.port = free_port_pair()
        grpc_front = GrpcFrontend(self.core, ability_negotiation=self.ability_negotiation,
                                  push_timeout=self.push_timeout)
        grpc_front.pushes = self.pushes
        http_front = HttpFrontend(self.core)
        await grpc_front.start(self.grpc_port)
        try:
            await http_front.start(self.port)
        except BaseException:
            await grpc_front.stop(None)
            raise
        self.grpc, self.http = grpc_front, http_front
        self.core.grpc, self.core.http = grpc_front, http_front
        self._expiry = asyncio.ensure_future(self._expire_loop())
        return self

    async def stop(self) -> None:
        if self._back is not None and self._back is not asyncio.current_task():
            self._back.cancel()
            self._back = None
        await self._close_frontends()

    async def _close_frontends(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        grpc_front, http_front = self.grpc, self.http
        self.grpc = self.http = None
        if grpc_front is not None:
            await grpc_front.stop()
        self.core.grpc = self.core.http = None
        if http_front is not None:
            await http_front.stop()

    async def restart(self) -> None:
        """Stop, forget everything (instances, subscribers, configs), start on the same ports."""
        await self.stop()
        self.core = Core(self.clock)
        await self.start()

    async def go_away(self, seconds: float) -> None:
        """Cut every connection and close the ports now; come back with the same state after ``seconds``."""
        await self._close_frontends()
        self.core.udp_subscribers.clear()

        async def come_back() -> None:
            await asyncio.sleep(seconds)
            await self.start()
        self._back = asyncio.ensure_future(come_back())

    async def wait_back(self, timeout: float = 30.0) -> None:
        if self._back is not None:
            await asyncio.wait_for(asyncio.shield(self._back), timeout)
            self._back = None

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(self.expiry_check)
            self.core.expire()

    # ------------------------------------------------------------------ acting as another application
    def register(self, service: str, ip: str, port: int, *, group: str | None = None, namespace: str = "",
                 cluster: str = DEFAULT_CLUSTER, weight: float = 1.0, healthy: bool = True, enabled: bool = True,
                 metadata: dict[str, str] | None = None) -> None:
        """A persistent instance registered server-side (pushed to subscribers like any other)."""
        g, s = split_service(service, group)
        inst = Instance(ip, port, cluster, weight, healthy, enabled, False, dict(metadata or {}), "persistent")
        self.core.services_changed([self.core.naming.register((namespace_of(namespace), g, s), inst)])

    def deregister(self, service: str, ip: str, port: int, *, group: str | None = None, namespace: str = "",
                   cluster: str | None = None) -> None:
        g, s = split_service(service, group)
        changed = self.core.naming.deregister((namespace_of(namespace), g, s), ip, port, cluster)
        self.core.services_changed([changed] if changed else [])

    def publish_config(self, data_id: str, group: str, content: str, namespace: str = "") -> None:
        key = (namespace_of(namespace), group, data_id)
        self.core.configs.publish(key, content)
        self.core.config_changed(key)

    def remove_config(self, data_id: str, group: str, namespace: str = "") -> None:
        key = (namespace_of(namespace), group, data_id)
        if self.core.configs.remove(key):
            self.core.config_changed(key)

    # ------------------------------------------------------------------ robustness
    def push_garbage(self, kind: str, connection_id: str | None = None) -> list[PushRecord]:
        """Send a broken ``NotifySubscriberRequest`` to one connection or every gRPC subscriber.

        ``bad-json``: the body is not JSON; ``no-port``: a host without ``port``; ``unknown-type``: a
        payload type no client knows. Returns the push records (their ``acked`` shows what the client did).
        """
        if kind not in GARBAGE_KINDS:
            raise ValueError(f"garbage kind must be one of {GARBAGE_KINDS}, not {kind!r}")
        assert self.grpc is not None, "server not running"
        targets = [connection_id] if connection_id else sorted(
            {c for subs in self.core.grpc_subscribers.values() for c in subs})
        out = []
        for conn_id in targets:
            key = next((k for k, subs in self.core.grpc_subscribers.items() if conn_id in subs), None)
            info = self.core.service_info(key, grouped_name=False) if key else {"name": "x", "groupName": "x"}
            if kind == "bad-json":
                record = self.grpc.send(conn_id, "NotifySubscriberRequest", '{"serviceInfo": {"name": ')
            elif kind == "unknown-type":
                record = self.grpc.send(conn_id, "NoSuchPushRequest", {"module": "naming"})
            else:
                info = {**info, "lastRefTime": self.clock.next(),
                        "hosts": [{"ip": "127.0.0.9", "weight": 1.0, "healthy": True, "enabled": True}]}
                record = self.grpc.push_service(conn_id, key[0] if key else "public", info)
            if record is not None:
                out.append(record)
        return out

    def push_garbage_udp(self, kind: str) -> int:
        """Send a broken ``dom`` datagram to every UDP subscriber; returns how many were sent."""
        assert self.http is not None, "server not running"
        sent = 0
        for key, subs in self.core.udp_subscribers.items():
            for sub in subs.values():
                if kind == "bad-json":
                    packet = b'{"type": "dom", "data": "{not json'
                else:
                    info = {**self.core.service_info(key, sub.clusters, grouped_name=True),
                            "lastRefTime": self.clock.next(), "hosts": [{"ip": "127.0.0.9"}]}
                    packet = json.dumps({"type": "dom", "data": json.dumps(info), "lastRefTime": 1}).encode()
                sent += self.http.push_udp_raw((sub.host, sub.port), packet) is not None
        return sent

    # ------------------------------------------------------------------ inspection
    def instances(self) -> dict[str, list[dict[str, Any]]]:
        """``{"namespace/group@@service": [instance JSON + owner]}`` (services with no instance included)."""
        return self.core.naming.snapshot()

    def hosts(self, service: str, group: str | None = None, namespace: str = "") -> list[tuple[str, int]]:
        g, s = split_service(service, group)
        return [(h["ip"], h["port"]) for h in self.instances().get(f"{namespace_of(namespace)}/{g}@@{s}", [])]

    def subscribers(self) -> dict[str, list[dict[str, Any]]]:
        return self.core.subscribers()

    def configs(self) -> dict[str, dict[str, Any]]:
        return self.core.configs.snapshot()

    def listeners(self) -> dict[str, list[str]]:
        return self.core.listeners()

    def connections(self) -> dict[str, dict[str, Any]]:
        conns = self.grpc.connections if self.grpc else {}
        return {cid: {"peer": c.peer, "labels": dict(c.labels), "clientVersion": c.client_version,
                      "tenant": c.tenant} for cid, c in conns.items()}

    def requests(self, type_name: str | None = None) -> list[dict[str, Any]]:
        return [{"transport": r.transport, "type": r.type, "body": r.body, "who": r.who}
                for r in self.core.requests if type_name is None or r.type == type_name]

    def udp_pushes(self) -> list[dict[str, Any]]:
        pushes = self.http.udp_pushes if self.http else []
        return [{"target": p.target, "nonce": p.nonce, "acked": p.acked, "sends": p.sends} for p in pushes]

    async def __aenter__(self) -> "NacosServer":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


class BlockingNacosServer:
    """A :class:`NacosServer` on a background loop thread; attribute access and calls are forwarded, and
    coroutine methods are run to completion on the loop (blocking the caller)."""

    def __init__(self, loop_thread: Any = None, **kwargs: Any) -> None:
        from integration.process import LoopThread
        self._own_loop = loop_thread is None
        self.loop_thread = loop_thread or LoopThread()
        self.server = NacosServer(**kwargs)

    def _run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        return self.loop_thread.run(coro, timeout)

    def start(self) -> "BlockingNacosServer":
        self._run(self.server.start())
        return self

    def stop(self) -> None:
        self._run(self.server.stop())

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self._own_loop:
                self.loop_thread.close()

    def restart(self) -> None:
        self._run(self.server.restart())

    def go_away(self, seconds: float) -> None:
        self._run(self.server.go_away(seconds))

    def wait_back(self, timeout: float = 30.0) -> None:
        self._run(self.server.wait_back(timeout), timeout + 5)

    def call(self, fn: Callable[[NacosServer], T], timeout: float = 10.0) -> T:
        """Run ``fn(server)`` on the loop thread (the only thread that may touch the server's state)."""
        return self.loop_thread.call(lambda: fn(self.server), timeout)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.server, name)
        if callable(attr):
            return lambda *a, **kw: self.loop_thread.call(lambda: attr(*a, **kw))
        return attr

    def __enter__(self) -> "BlockingNacosServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
