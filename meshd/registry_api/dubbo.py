"""The Dubbo pub/sub API: a superset of MOSN's ``dubbo_registry`` extension (``mosn/mosn:pkg/upstream/
servicediscovery/dubbod/``), for Dubbo apps without an SDK registry.

Routes (JSON bodies; replies ``{"err_no": 0|1, "err_msg": str, ...}``)::

    POST /pub    {"registry": {...}, "service": {"interface", "methods", "group", "version", "port", ...}}
    POST /unpub  {"registry": {...}, "service": {"interface", "group", "version", "port"}}
    POST /sub    {"registry": {...}, "service": {"interface", "methods", "group", "version"}}
    POST /unsub  {"registry": {...}, "service": {"interface", "group", "version"}}
    GET  /services   every publication and subscription (with its providers)

MOSN's shape is accepted as is. The ``registry`` block may be omitted: the API is bound to the configured
registry (``registry_api.dubbo.registry``, a discovery source that registers); a block naming another ``type``
than that source's (``zookeeper``) is refused, its ``addr`` and credentials are not used. Extensions to MOSN's ``service``: ``port`` and ``host``
(where the app serves; default ``app_address``, ``127.0.0.1:20880``), ``weight``, ``application`` and
``parameters`` (more URL parameters, which win over meshd's). Unlike MOSN, group, version and every
parameter reach the registry and the endpoint metadata.

``pub`` writes the provider entry the Dubbo SDK writes (with ZooKeeper: a Java-style ``dubbo://host:port/<interface>?...``
with sorted parameters, so apache-dubbo-js and Java consumers read it); publishing the same service again is
idempotent. ``unpub`` removes the publications of that interface, group and version (only the one on
``service.port`` when a port is given). ``sub`` writes a ``consumer://`` node and watches the interface: the
cluster named by the interface appears, and the app calls ``dubbo://<listener>/<interface>``, where
``<listener>`` is meshd's dubbo/auto listener (``registry_api.dubbo.listener``, default the first one); RPC's
default route sends a call to the interface's cluster and subset routing matches its version and group. The
reply waits up to ``subscribe_timeout`` for the first registry data and carries ``address``, ``url`` and the
matching ``providers``. ``unpub``/``unsub`` of something not registered succeed with ``removed: 0``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from discovery.registration import INTERFACE, Registration, Registry
from meshd.registry_api.api import HOST, BadRequest, Body, RegistryApi, endpoint_url, join_address

log = logging.getLogger("meshd.registry_api")

METHOD = re.compile(r"[\w$]+|\*")
INTEGER_PARAMETERS = ("weight", "warmup", "timestamp", "timeout", "retries")


@dataclass(frozen=True, slots=True)
class DubboService:
    """The ``service`` block of a request, validated."""

    interface: str
    group: str
    version: str
    methods: tuple[str, ...]
    host: str
    port: int | None
    weight: int | None
    application: str
    parameters: dict[str, str]

    @classmethod
    def parse(cls, body: Body, registry: Registry) -> "DubboService":
        kind = body.obj("registry").text("type", what="a registry type")
        if kind and kind.lower() != registry.kind:
            raise BadRequest("registry.type", f"{kind!r} is not supported: this API publishes to {registry.kind} "
                                              f"(discovery source {registry.name})")
        svc = body.obj("service", required=True)
        return cls(
            interface=svc.text("interface", required=True, pattern=INTERFACE, what="a Java interface name"),
            group=svc.text("group", what="a group name"), version=svc.text("version", what="a version"),
            methods=svc.strings("methods", pattern=METHOD, what="a method name"),
            host=svc.text("host", pattern=HOST, what="a host name or IP address"), port=svc.port("port"),
            weight=svc.integer("weight"), application=svc.text("application", what="an application name"),
            parameters=svc.params("parameters", integers=INTEGER_PARAMETERS),
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.interface, self.group, self.version)


class DubboPubSubApi(RegistryApi):
    """``registry_api.dubbo``; see the module docstring."""

    kind = "dubbo"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.published: dict[tuple, Registration] = {}          # Registration.key -> registration
        self.subscribed: dict[tuple[str, str, str], Registration] = {}
        self.listener: Any = None

    async def prepare(self) -> None:
        wanted = self.config.listener
        for listener in self.listeners:
            lc = listener.ctx.config
            if lc.protocol in ("dubbo", "auto") and (wanted is None or lc.name == wanted):
                self.listener = listener
                return
        raise RuntimeError(f"registry_api.dubbo: no dubbo or auto listener {wanted or ''} to send apps' calls to")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/pub", self.post_pub)
        router.add_post("/unpub", self.post_unpub)
        router.add_post("/sub", self.post_sub)
        router.add_post("/unsub", self.post_unsub)
        router.add_get("/services", self.get_services)

    def failure(self, status: int, message: str) -> web.Response:
        return self.reply({"err_no": 1, "err_msg": message}, status)

    def ok(self, **extra: Any) -> web.Response:
        return self.reply({"err_no": 0, "err_msg": "", **extra})

    @property
    def listener_address(self) -> str:
        """Where the app sends its Dubbo calls (a wildcard bind is reached on loopback)."""
        host, _, port = self.listener.bound.rpartition(":")
        return f"{'127.0.0.1' if host in ('0.0.0.0', '', '[::]') else host}:{port}"

    async def _service(self, request: web.Request) -> DubboService:
        return DubboService.parse(await self.body(request), self.registry)

    # -- providers ------------------------------------------------------------------------------------
    async def post_pub(self, request: web.Request) -> web.Response:
        svc = await self._service(request)
        address = join_address(svc.host or self.app_host, svc.port or self.app_port)
        async with self.lock:
            reg = await self.publish(svc.interface, address, application=svc.application, group=svc.group,
                                     version=svc.version, methods=svc.methods, weight=svc.weight,
                                     protocol="dubbo", parameters=svc.parameters)
            self.published[reg.key] = reg
        log.info("dubbo registry API: published %s at %s", svc.interface, address)
        return self.ok(url=reg.url, path=reg.path)

    async def post_unpub(self, request: web.Request) -> web.Response:
        svc = await self._service(request)
        port = svc.port
        async with self.lock:
            gone = [reg for key, reg in self.published.items()
                    if (reg.interface, reg.group, reg.version) == svc.key
                    and (port is None or reg.address.rpartition(":")[2] == str(port))
                    and (not svc.host or reg.address.rpartition(":")[0].strip("[]") == svc.host)]
            for reg in gone:
                del self.published[reg.key]
                await self.unpublish(reg)
        log.info("dubbo registry API: unpublished %s (%d node(s))", svc.interface, len(gone))
        return self.ok(removed=len(gone))

    # -- consumers ------------------------------------------------------------------------------------
    async def post_sub(self, request: web.Request) -> web.Response:
        svc = await self._service(request)
        async with self.lock:
            reg = await self.subscribe_consumer(svc.interface, application=svc.application, group=svc.group,
                                                version=svc.version, methods=svc.methods, protocol="dubbo",
                                                parameters=svc.parameters)
            self.subscribed[svc.key] = reg
        await self.wait_service(svc.interface)
        providers = self._providers(svc.key)
        log.info("dubbo registry API: subscribed %s (%d provider(s))", svc.interface, len(providers))
        return self.ok(address=self.listener_address, url=self._call_url(svc.key), providers=providers)

    async def post_unsub(self, request: web.Request) -> web.Response:
        svc = await self._service(request)
        async with self.lock:
            reg = self.subscribed.pop(svc.key, None)
            if reg is not None:
                await self.unsubscribe_consumer(reg)
        log.info("dubbo registry API: unsubscribed %s%s", svc.interface, "" if reg else " (was not subscribed)")
        return self.ok(removed=int(reg is not None))

    def _providers(self, key: tuple[str, str, str]) -> list[str]:
        interface, group, version = key
        return [endpoint_url(ep, interface) for ep in self.providers(interface, group, version)]

    def _call_url(self, key: tuple[str, str, str]) -> str:
        interface, group, version = key
        query = "&".join(f"{k}={v}" for k, v in (("group", group), ("version", version)) if v)
        return f"dubbo://{self.listener_address}/{interface}" + (f"?{query}" if query else "")

    # -- snapshot -------------------------------------------------------------------------------------
    async def get_services(self, request: web.Request) -> web.Response:
        return self.ok(
            address=self.listener_address,
            published=[reg.to_json() for reg in self.published.values()],
            subscribed=[{**reg.to_json(), "url": self._call_url(key), "consumer_url": reg.url,
                         "providers": self._providers(key)} for key, reg in self.subscribed.items()],
        )
