"""The SOFA mesh registry API: a drop-in for the sidecar that SOFA's mesh clients call.

Routes (POST bodies are JSON, read whatever the content type: SOFARPC sends ``text/plain``; replies are
``{"success": bool, "errorMessage": str, ...}``)::

    POST /configs/application   {appName, zone, dataCenter, antShareCloud, registryEndpoint, accessKey, secretKey}
    POST /services/publish      {serviceName, port, protocolType, providerMetaInfo{protocol, version, serializeType,
                                 appName, properties{...}}, onlyPublishInCloud, group, host (meshd extension)}
    POST /services/unpublish    {serviceName}
    POST /services/subscribe    {serviceName, protocolType, properties{...}, ...}  -> + {serviceName, datas: [URLs]}
    POST /services/unsubscribe  {serviceName}
    GET  /services              the application, every publication and subscription (with its providers)
    GET  /services/{serviceName}
    GET  /configs/application

The clients, and what each sends (bodies copied from their sources in ``tests/unit/meshd/test_sofa_mesh_api.py``):

- SOFARPC's ``registry-mesh`` (``MeshRegistry`` / ``MeshApiClient``, fastjson, null fields left out):
  publish ``{serviceName, protocolType: "bolt", providerMetaInfo{protocol: "bolt", serializeType, appName,
  version: "4.0", properties}, onlyPublishInCloud, group}`` (no port: the server port is app_address's);
  subscribe ``{serviceName, protocolType: "bolt", properties, vipEnforce, vipOnly, localCloudFirst, group}``;
  application ``{appName}``.
- anthunder (PyPI, Ant's Python Bolt library, written for MOSN): publish ``{serviceName, providerMetaInfo{protocol:
  "1", version: "4.0", serializeType: "protobuf", appName}, port: "<server port>", protocolType: "DEFAULT",
  onlyPublishInCloud}``; subscribe and unpublish ``{serviceName}``; application ``{appName}`` plus whichever of
  dataCenter, zone, registryEndPoint, accessKey, secretKey, antShareCloud are set.
- MOSN's own model (``confreg/models.go``, removed in mosn/mosn@ce65f6051): ``{serviceName, providerMetaInfo{protocol,
  version, serializeType, appName}}``; MOSN wrote ``providerMetaInfo.protocol`` verbatim as the registry data's
  ``p=``, so it is SOFA's numeric code there.

Protocols (``providerMetaInfo.protocol``, else ``protocolType``, else bolt) are names in any case (``bolt``,
``BOLT``), SOFA's numeric remoting codes mapped as ``SofaRegistryHelper.parseProviderInfo`` maps registry data's
``p=`` (:data:`PROTOCOL_CODES`: 1 = bolt, 13 = tr), or ``DEFAULT`` (SOFARPC's and anthunder's protocolType:
no protocol named, bolt). ``serializeType`` may be SOFA's numeric code as well (:data:`SERIALIZATION_CODES`,
as ``_SERIALIZETYPE`` is read). Anything else is a 400 naming the field and the value.

``serviceName`` is SOFARPC's unique name ``interface:version[:uniqueId]`` (``ConfigUniqueNameGenerator``); a
bare interface means version ``1.0``. It becomes the interface (the cluster name, as every registry source
names clusters), the version and the uniqueId (endpoint group), so subset routing tells versions and
uniqueIds apart on the Bolt listener.

Publishing registers the app's provider through the configured registry, as that registry's SDK would (a
ZooKeeper source in the SOFARPC layout: ``bolt://host:port?version=..&uniqueId=..&appName=..`` with the online
byte; in the Dubbo layout: a Java-style URL).
Its address: the request's ``port`` (anthunder sends its server port; SOFARPC sends none) and ``host`` (a meshd
extension; no client sends one), else ``app_address`` (default ``127.0.0.1:12200``, SOFARPC's server port).
``providerMetaInfo.properties`` become URL parameters (they win over meshd's defaults; ``weight``, ``timeout``,
``warmupTime``, ``warmupWeight`` must be integers); the application's ``zone`` is added as ``zone`` and the
meta ``version`` (SOFA's registry data version, ``4.0``) as ``v``. Publishing the same serviceName again
replaces its node (a changed address unregisters the old one).

Subscribing writes the consumer node and watches the interface, which creates the cluster; the reply waits
up to ``subscribe_timeout`` for the first registry data and lists the enabled providers of that version and
uniqueId as ``datas``. SOFARPC's ``MeshRegistry`` ignores those addresses: it sends Bolt to the registry host
on port 12220 and only copies the query string of the first entry; anthunder 0.8 ignores the reply and calls
127.0.0.1:12220. So at start this API binds a Bolt listener on ``bolt_address`` (default ``127.0.0.1:12220``;
an existing bolt/auto listener on that address is reused), which routes by the ``service`` header to the
interface's cluster (the RPC default route).

Unpublish / unsubscribe of a serviceName that is not registered succeed (``removed: false``): repeats are
idempotent, as the SDK retries.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from discovery.registration import INTERFACE, Registration
from discovery.sofa_params import PROTOCOL_CODES, SERIALIZATION_CODES
from meshd.config import ListenerConfig
from meshd.registry_api.api import HOST, TOKEN, BadRequest, Body, RegistryApi, endpoint_url, join_address

log = logging.getLogger("meshd.registry_api")

BOLT_LISTENER = "sofa-mesh-bolt"
DEFAULT_VERSION = "1.0"                 # SOFARPC's default service version
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
NAME_PART = re.compile(r"[^\s:&=?#/%]+")
#: Properties a reader of the registry parses as integers (a bad one would hide the provider from consumers).
INTEGER_PROPERTIES = ("weight", "_WEIGHT", "timeout", "_TIMEOUT", "warmupTime", "warmupWeight", "startTime")
#: Application fields echoed by GET /configs/application only as "set".
SECRET_FIELDS = frozenset({"accessKey", "secretKey"})
#: The protocolType that names no protocol (SOFARPC's comments: "DEFAULT/XFIRE ..."; data ids end in ``@DEFAULT``
#: for bolt and tr); anthunder always sends it.
NO_PROTOCOL = "DEFAULT"


def _codes(table: dict[str, str]) -> str:
    return ", ".join(f"{code} = {name}" for code, name in table.items())


def protocol_field(body: Body, key: str) -> str:
    """``key`` as a protocol name (lower case); "" when absent or ``DEFAULT`` (the caller's default applies).

    A name in any case, or SOFA's numeric code (:data:`PROTOCOL_CODES`); anything else is a :class:`BadRequest`.
    """
    text = body.text(key, pattern=None)
    if text.isdigit():
        if text not in PROTOCOL_CODES:
            raise BadRequest(body.field(key), f"{text!r} is not a SOFA protocol code ({_codes(PROTOCOL_CODES)})")
        return PROTOCOL_CODES[text]
    if text.upper() == NO_PROTOCOL:
        return ""
    if text and not SCHEME.fullmatch(text):
        raise BadRequest(body.field(key), f"{text!r} is not a protocol name or a SOFA protocol code "
                                          f"({_codes(PROTOCOL_CODES)})")
    return text.lower()


def serialization_field(body: Body, key: str) -> str:
    """``key`` as a serialization name: the name as sent, or SOFA's numeric code (:data:`SERIALIZATION_CODES`)."""
    text = body.text(key, what="a serialization name")
    if text.isdigit():
        if text not in SERIALIZATION_CODES:
            raise BadRequest(body.field(key), f"{text!r} is not a SOFA serialization code "
                                              f"({_codes(SERIALIZATION_CODES)})")
        return SERIALIZATION_CODES[text]
    return text


def application_info(body: Body) -> dict[str, str]:
    """A ``/configs/application`` body as text fields (booleans such as ``antShareCloud`` as true/false)."""
    info = {}
    for key, value in body.data.items():
        if isinstance(value, bool):
            info[key] = "true" if value else "false"
            continue
        text = body.text(key, pattern=TOKEN if key in ("appName", "zone") else None,
                         what="a name without spaces, '&', '=', '?' or '#'")
        if text:
            info[key] = text
    return info


@dataclass(frozen=True, slots=True)
class ServiceName:
    """SOFARPC's unique service name ``interface:version[:uniqueId]``."""

    interface: str
    version: str
    unique_id: str

    @classmethod
    def parse(cls, text: str, field: str = "serviceName") -> "ServiceName":
        parts = text.split(":")
        if len(parts) > 3:
            raise BadRequest(field, f"{text!r} is not interface:version[:uniqueId]")
        interface, version, unique_id = (parts + ["", ""])[:3]
        if not INTERFACE.fullmatch(interface):
            raise BadRequest(field, f"{text!r}: {interface!r} is not a Java interface name")
        for what, part in (("version", version), ("uniqueId", unique_id)):
            if part and not NAME_PART.fullmatch(part):
                raise BadRequest(field, f"{text!r}: {what} {part!r} contains characters a registry URL cannot carry")
        if len(parts) > 1 and not version:
            raise BadRequest(field, f"{text!r}: empty version")
        return cls(interface, version or DEFAULT_VERSION, unique_id)

    def __str__(self) -> str:
        return f"{self.interface}:{self.version}" + (f":{self.unique_id}" if self.unique_id else "")


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """A validated ``/services/publish`` body (any client's shape; see the module docstring)."""

    name: ServiceName
    protocol: str
    serialization: str
    application: str
    host: str
    port: int
    parameters: dict[str, str]

    @classmethod
    def decode(cls, body: Body, application: dict[str, str], host: str, port: int) -> "PublishRequest":
        """``application`` is the app's ``/configs/application`` info; ``host``/``port`` the default address."""
        name = ServiceName.parse(body.text("serviceName", required=True, pattern=None))
        meta = body.obj("providerMetaInfo")
        properties = meta.params("properties", integers=INTEGER_PROPERTIES)
        protocol = protocol_field(meta, "protocol") or protocol_field(body, "protocolType") or "bolt"
        parameters = {"zone": application.get("zone", ""), "v": meta.text("version", what="a version")}
        parameters = {k: v for k, v in parameters.items() if v}
        parameters.update(properties)
        return cls(name, protocol, serialization_field(meta, "serializeType"),
                   meta.text("appName", what="an application name") or application.get("appName", ""),
                   body.text("host", pattern=HOST, what="a host name or IP address") or host,
                   body.port("port") or port, parameters)


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """A validated ``/services/subscribe`` body."""

    name: ServiceName
    protocol: str
    parameters: dict[str, str]

    @classmethod
    def decode(cls, body: Body) -> "SubscribeRequest":
        name = ServiceName.parse(body.text("serviceName", required=True, pattern=None))
        properties = body.params("properties")
        return cls(name, protocol_field(body, "protocolType") or "bolt", properties)


@dataclass(slots=True)
class Entry:
    """One published or subscribed serviceName and the node meshd keeps for it."""

    name: ServiceName
    registration: Registration

    def to_json(self) -> dict[str, Any]:
        reg = self.registration
        return {"serviceName": str(self.name), "interface": self.name.interface, "version": self.name.version,
                "uniqueId": self.name.unique_id, "address": reg.address, "url": reg.url, "path": reg.path}


class SofaMeshApi(RegistryApi):
    """``registry_api.sofa``; see the module docstring."""

    kind = "sofa"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.application: dict[str, str] = {}
        self.published: dict[str, Entry] = {}
        self.subscribed: dict[str, Entry] = {}
        self.bolt_listener: Any = None

    async def prepare(self) -> None:
        address = self.config.bolt_address
        for listener in self.listeners:
            lc = listener.ctx.config
            if lc.address == address and lc.protocol in ("bolt", "auto"):
                self.bolt_listener = listener
                return
        names = {x.ctx.config.name for x in self.listeners}
        name = BOLT_LISTENER if BOLT_LISTENER not in names else f"registry-api-{BOLT_LISTENER}"
        self.bolt_listener = await self.add_listener(ListenerConfig(name=name, address=address, protocol="bolt"))

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/configs/application", self.post_application)
        router.add_get("/configs/application", self.get_application)
        router.add_post("/services/publish", self.post_publish)
        router.add_post("/services/unpublish", self.post_unpublish)
        router.add_post("/services/subscribe", self.post_subscribe)
        router.add_post("/services/unsubscribe", self.post_unsubscribe)
        router.add_get("/services", self.get_services)
        router.add_get("/services/{serviceName}", self.get_service)

    def failure(self, status: int, message: str) -> web.Response:
        return self.reply({"success": False, "errorMessage": message}, status)

    def ok(self, **extra: Any) -> web.Response:
        return self.reply({"success": True, "errorMessage": "", **extra})

    # -- application ----------------------------------------------------------------------------------
    async def post_application(self, request: web.Request) -> web.Response:
        info = application_info(await self.body(request))
        self.application = info
        log.info("sofa registry API: application %s (zone %s)", info.get("appName", "-"), info.get("zone", "-"))
        return self.ok()

    async def get_application(self, request: web.Request) -> web.Response:
        return self.ok(application=self._application_view())

    def _application_view(self) -> dict[str, str]:
        return {k: ("(set)" if k in SECRET_FIELDS else v) for k, v in self.application.items()}

    # -- publishing -----------------------------------------------------------------------------------
    async def post_publish(self, request: web.Request) -> web.Response:
        req = PublishRequest.decode(await self.body(request), self.application, self.app_host, self.app_port)
        name, address = req.name, join_address(req.host, req.port)
        async with self.lock:
            reg = await self.publish(name.interface, address, application=req.application, group=name.unique_id,
                                     version=name.version, protocol=req.protocol, serialization=req.serialization,
                                     parameters=req.parameters)
            old = self.published.get(str(name))
            if old is not None and old.registration.path != reg.path:
                await self.unpublish(old.registration)
            self.published[str(name)] = Entry(name, reg)
        log.info("sofa registry API: published %s at %s (%s)", name, address, req.protocol)
        return self.ok(serviceName=str(name), url=reg.url)

    async def post_unpublish(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        name = ServiceName.parse(body.text("serviceName", required=True, pattern=None))
        async with self.lock:
            entry = self.published.pop(str(name), None)
            if entry is not None:
                await self.unpublish(entry.registration)
        log.info("sofa registry API: unpublished %s%s", name, "" if entry else " (was not published)")
        return self.ok(serviceName=str(name), removed=entry is not None)

    # -- subscribing ----------------------------------------------------------------------------------
    async def post_subscribe(self, request: web.Request) -> web.Response:
        req = SubscribeRequest.decode(await self.body(request))
        name = req.name
        async with self.lock:
            reg = await self.subscribe_consumer(
                name.interface, application=self.application.get("appName", ""), group=name.unique_id,
                version=name.version, protocol=req.protocol, parameters=req.parameters)
            old = self.subscribed.get(str(name))
            if old is not None and old.registration.path != reg.path and old.registration.key != reg.key:
                await self.unsubscribe_consumer(old.registration)
            self.subscribed[str(name)] = Entry(name, reg)
        await self.wait_service(name.interface)
        datas = self._datas(name)
        log.info("sofa registry API: subscribed %s (%d provider(s))", name, len(datas))
        return self.ok(serviceName=str(name), datas=datas)

    def _datas(self, name: ServiceName) -> list[str]:
        return [endpoint_url(ep) for ep in self.providers(name.interface, name.unique_id, name.version)]

    async def post_unsubscribe(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        name = ServiceName.parse(body.text("serviceName", required=True, pattern=None))
        async with self.lock:
            entry = self.subscribed.pop(str(name), None)
            if entry is not None:
                await self.unsubscribe_consumer(entry.registration)
        log.info("sofa registry API: unsubscribed %s%s", name, "" if entry else " (was not subscribed)")
        return self.ok(serviceName=str(name), removed=entry is not None)

    # -- snapshots ------------------------------------------------------------------------------------
    async def get_services(self, request: web.Request) -> web.Response:
        return self.ok(application=self._application_view(), bolt=self.bolt_listener.bound,
                       published=[e.to_json() for e in self.published.values()],
                       subscribed=[self._subscription(e) for e in self.subscribed.values()])

    async def get_service(self, request: web.Request) -> web.Response:
        name = ServiceName.parse(request.match_info["serviceName"])
        published, subscribed = self.published.get(str(name)), self.subscribed.get(str(name))
        if published is None and subscribed is None:
            return self.failure(404, f"service {name} is neither published nor subscribed")
        return self.ok(serviceName=str(name), published=published.to_json() if published else None,
                       subscribed=self._subscription(subscribed) if subscribed else None)

    def _subscription(self, entry: Entry) -> dict[str, Any]:
        return {**entry.to_json(), "datas": self._datas(entry.name)}
