"""The hub of the test Nacos server: stores, subscribers, listeners, and the fan-out of changes to pushes.

:class:`Core` owns one :class:`~integration.nacos.model.NamingStore` and one
:class:`~integration.nacos.model.ConfigStore` and knows who watches what:

- gRPC subscribers ``service key → {connection id: clusters}`` — pushed ``NotifySubscriberRequest``;
- UDP subscribers (v1 ``/instance/list?udpPort=``) ``service key → {(host, port): UdpSubscriber}`` — pushed
  ``{"type": "dom", ...}`` datagrams by the HTTP front end;
- gRPC config listeners ``config key → {connection id: tenant as the client spelled it}`` — pushed
  ``ConfigChangeNotifyRequest``; v1 long-polls wait on :meth:`wait_config_change`.

Every mutation goes through ``services_changed`` / ``config_changed``, which push synchronously queued
messages (the actual socket writes happen on the event loop right after). ``requests`` records every
request the server handled (transport, type, body, who) for tests to inspect. Runs on one event loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from integration.nacos.model import (ConfigKey, ConfigStore, NamingStore, RefClock, Service, ServiceKey)

if TYPE_CHECKING:
    from integration.nacos.grpc_server import GrpcFrontend
    from integration.nacos.http_api import HttpFrontend


@dataclass
class UdpSubscriber:
    """A v1 subscriber learned from ``/instance/list``: where its UDP push receiver listens."""

    host: str
    port: int
    clusters: str
    client_ip: str
    last_seen: float = field(default_factory=time.monotonic)


@dataclass
class RequestRecord:
    transport: str   # "grpc" | "http"
    type: str        # request class name, or "METHOD /path"
    body: dict[str, Any]
    who: str         # connection id or peer address
    at: float = field(default_factory=time.monotonic)


class Core:
    """See the module docstring. ``clock`` is shared across restarts so ``lastRefTime`` never goes back."""

    def __init__(self, clock: RefClock | None = None) -> None:
        self.clock = clock or RefClock()
        self.naming = NamingStore(self.clock)
        self.configs = ConfigStore(self.clock)
        self.grpc_subscribers: dict[ServiceKey, dict[str, str]] = {}
        self.udp_subscribers: dict[ServiceKey, dict[tuple[str, int], UdpSubscriber]] = {}
        self.grpc_listeners: dict[ConfigKey, dict[str, str]] = {}
        self.requests: list[RequestRecord] = []
        self.grpc: "GrpcFrontend | None" = None
        self.http: "HttpFrontend | None" = None
        self._config_events: dict[ConfigKey, asyncio.Event] = {}
        self._poll_waiters: dict[ConfigKey, int] = {}
        self.logins: list[str] = []

    def record_request(self, transport: str, type_name: str, body: dict[str, Any], who: str) -> None:
        self.requests.append(RequestRecord(transport, type_name, dict(body), who))

    # ------------------------------------------------------------------ naming
    def service_info(self, key: ServiceKey, clusters: str = "", healthy_only: bool = False, *,
                     grouped_name: bool) -> dict[str, Any]:
        svc = self.naming.service(key) or Service(*key, revision=self.clock.next())
        return svc.info(clusters, healthy_only, grouped_name=grouped_name)

    def subscribe_grpc(self, conn_id: str, key: ServiceKey, clusters: str, subscribe: bool) -> None:
        subs = self.grpc_subscribers.setdefault(key, {})
        if subscribe:
            subs[conn_id] = clusters
        else:
            subs.pop(conn_id, None)

    def subscribe_udp(self, key: ServiceKey, sub: UdpSubscriber) -> None:
        self.udp_subscribers.setdefault(key, {})[(sub.host, sub.port)] = sub

    def services_changed(self, keys: Iterable[ServiceKey]) -> None:
        for key in dict.fromkeys(keys):
            if self.grpc is not None:
                for conn_id, clusters in list(self.grpc_subscribers.get(key, {}).items()):
                    self.grpc.push_service(conn_id, key[0], self.service_info(key, clusters, grouped_name=False))
            if self.http is not None:
                for sub in list(self.udp_subscribers.get(key, {}).values()):
                    self.http.push_udp(sub, self.service_info(key, sub.clusters, grouped_name=True))

    def connection_closed(self, owner: str) -> None:
        """A gRPC connection ended: drop what it owned and what it watched, push the changes."""
        conn_id = owner.split(":", 1)[1]
        for subs in self.grpc_subscribers.values():
            subs.pop(conn_id, None)
        for listeners in self.grpc_listeners.values():
            listeners.pop(conn_id, None)
        self.services_changed(self.naming.drop_owner(owner))

    def expire(self) -> None:
        self.services_changed(self.naming.expire(time.monotonic()))

    # ------------------------------------------------------------------ config
    def listen_grpc(self, conn_id: str, key: ConfigKey, tenant: str, listen: bool) -> None:
        listeners = self.grpc_listeners.setdefault(key, {})
        if listen:
            listeners[conn_id] = tenant
        else:
            listeners.pop(conn_id, None)

    def config_changed(self, key: ConfigKey) -> None:
        if self.grpc is not None:
            for conn_id, tenant in list(self.grpc_listeners.get(key, {}).items()):
                self.grpc.push_config(conn_id, key[2], key[1], tenant)
        event = self._config_events.pop(key, None)
        if event is not None:
            event.set()

    async def wait_config_change(self, keys: list[ConfigKey], timeout: float) -> bool:
        """Wait until one of ``keys`` changes (True) or ``timeout`` seconds pass (False)."""
        if not keys:
            await asyncio.sleep(timeout)
            return False
        events = [self._config_events.setdefault(k, asyncio.Event()) for k in keys]
        for k in keys:
            self._poll_waiters[k] = self._poll_waiters.get(k, 0) + 1
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            return bool(done)
        finally:
            for w in waiters:
                w.cancel()
            for k in keys:
                self._poll_waiters[k] -= 1
                if not self._poll_waiters[k]:
                    del self._poll_waiters[k]
                    if k in self._config_events and not self._config_events[k].is_set():
                        del self._config_events[k]

    def long_poll_waiters(self) -> list[ConfigKey]:
        """Config keys some v1 long poll is waiting on right now."""
        return sorted(self._poll_waiters)

    # ------------------------------------------------------------------ inspection
    def subscribers(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for (ns, g, s), subs in self.grpc_subscribers.items():
            out.setdefault(f"{ns}/{g}@@{s}", []).extend(
                {"transport": "grpc", "connection": c, "clusters": cl} for c, cl in subs.items())
        for (ns, g, s), udp in self.udp_subscribers.items():
            out.setdefault(f"{ns}/{g}@@{s}", []).extend(
                {"transport": "udp", "address": f"{u.host}:{u.port}", "clusters": u.clusters,
                 "clientIP": u.client_ip} for u in udp.values())
        return {k: v for k, v in sorted(out.items()) if v}

    def listeners(self) -> dict[str, list[str]]:
        out = {f"{ns}/{g}/{d}": [f"grpc:{c}" for c in ls] for (ns, g, d), ls in self.grpc_listeners.items() if ls}
        for ns, g, d in self._poll_waiters:
            out.setdefault(f"{ns}/{g}/{d}", []).append("http:long-poll")
        return dict(sorted(out.items()))
