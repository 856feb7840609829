"""What every app-facing registry API shares: an aiohttp server, JSON bodies read field by field, errors.

A :class:`RegistryApi` is a component of the daemon (``start()`` / ``stop()``). It is built with what it
uses: its config section, the :class:`~discovery.registration.Registry` it publishes and subscribes
through (the discovery source named by ``registry``), the cluster model (the providers it lists) and the
daemon's listeners (the SOFA API adds a Bolt listener, the Dubbo API names the one apps call). At start the
subclass prepares (:meth:`RegistryApi.prepare`), then the API serves its routes on its ``address`` (loopback
by default). It never touches the forwarding path.

Bodies. Clients send JSON (SOFARPC's ``MeshApiClient`` with ``Content-Type: text/plain``, so the content type
is not checked). :class:`Body` reads one field at a time and raises :class:`BadRequest` naming the field's path
(``providerMetaInfo.properties.weight: 'heavy' is not an integer``). Unknown fields are ignored: the SDKs send
more than a sidecar needs (``onlyPublishInCloud``, ``vipEnforce``, ...).

Errors, one vocabulary for both APIs (each renders them in its own reply shape, :meth:`RegistryApi.failure`):

=====================================================  ======  =========================================
cause                                                  status  state afterwards
=====================================================  ======  =========================================
:class:`BadRequest` (a field is missing or invalid)    400     unchanged
:class:`~discovery.registration.RegistrationError`      503     unchanged: the registry leaves nothing
(the registry refused, or is not connected)                    behind
anything else (a bug)                                  500     logged with its traceback
=====================================================  ======  =========================================

All or nothing: the registry's subscribe (a consumer entry, then a watch on the interface) leaves nothing
behind when either step fails (the :class:`~discovery.registration.Registry` contract). Mutations of one API
are serialised by a lock, so concurrent calls for one service cannot interleave their registry steps.
Registrations stay until they are undone through the API or the registry shuts down (``meshd`` stopping
removes every entry it wrote; an expired session re-creates them).

Tokens (:mod:`meshd.auth`). Each API has its own ``token`` / ``token_file`` (``registry_api.<api>.token``), not
the admin's: the SDK clients (SOFARPC's ``MeshApiClient``, anthunder, MOSN's) send no ``Authorization`` header,
so an admin token must not lock them out. Without a token the API is open, as those clients expect, which the
config allows only on a loopback ``address`` (the default: app and sidecar share the host or the pod). With one
every POST (publish, unpublish, subscribe, unsubscribe, ``/configs/application``) needs
``Authorization: Bearer <token>`` and gets 401 in the API's reply shape without it; reads stay open to loopback
peers. Each POST that passed writes an audit line on ``meshd.audit``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Mapping, Pattern, Sequence

from aiohttp import web

from configkit import split_host_port
from discovery.model import ClusterModel, Endpoint
from discovery.registration import Registration, RegistrationError, Registry
from meshd.auth import BearerAuth, load_token

if TYPE_CHECKING:
    from meshd.config import ListenerConfig
    from meshd.proxy.listener import Listener

#: Binds one more listener at runtime and returns it once it is bound.
AddListener = Callable[["ListenerConfig"], Awaitable["Listener"]]

log = logging.getLogger("meshd.registry_api")

#: A URL parameter value or registry token: nothing that would end or split a registry URL parameter.
TOKEN = re.compile(r"[^\s&=?#]+")
#: A host name or IP address the app says it serves on (IPv6 without brackets).
HOST = re.compile(r"[A-Za-z0-9._:-]+")
#: A URL parameter name.
PARAM_NAME = re.compile(r"[^\s&=?#/]+")
PARAM_VALUE = re.compile(r"[^\s&#]*")
INTEGER = re.compile(r"-?[0-9]+")
_JSON_TYPES = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
               list: "an array", dict: "an object"}


class BadRequest(Exception):
    """A request body that cannot be used; ``field`` is the path of the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


class Body:
    """A JSON object of a request, read field by field; every error names the field (see the module doc)."""

    __slots__ = ("data", "path")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        self.data = data
        self.path = path

    @classmethod
    def parse(cls, raw: bytes) -> "Body":
        if not raw.strip():
            raise BadRequest("body", "empty; expected a JSON object")
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest("body", f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise BadRequest("body", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        if not isinstance(data, dict):
            raise BadRequest("body", f"expected a JSON object, got {json_type(data)}")
        return cls(data)

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def text(self, key: str, *, required: bool = False, pattern: Pattern[str] | None = TOKEN,
             what: str = "a valid value") -> str:
        """A string (numbers are accepted and converted, as Java clients may send them); "" when absent."""
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise BadRequest(self.field(key), "required" if value is None else "must not be empty")
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(self.field(key), f"expected a string, got {json_type(value)}")
        text = str(value)
        if pattern is not None and not pattern.fullmatch(text):
            raise BadRequest(self.field(key), f"{text!r} is not {what}")
        return text

    def port(self, key: str) -> int | None:
        """A TCP port as a number or a string of digits; None when absent."""
        value = self.data.get(key)
        if value is None or value == "":
            return None
        text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
        if text is None or not text.isdigit() or not 0 < int(text) < 65536:
            raise BadRequest(self.field(key), f"{value!r} is not a port number in 1..65535")
        return int(text)

    def integer(self, key: str, *, minimum: int = 0) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not INTEGER.fullmatch(str(value)):
            raise BadRequest(self.field(key), f"{value!r} is not an integer")
        if int(value) < minimum:
            raise BadRequest(self.field(key), f"{value!r} is below {minimum}")
        return int(value)

    def obj(self, key: str, *, required: bool = False) -> "Body":
        """A nested object (an empty one when absent and not required)."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise BadRequest(self.field(key), "required")
            return Body({}, self.field(key))
        if not isinstance(value, dict):
            raise BadRequest(self.field(key), f"expected an object, got {json_type(value)}")
        return Body(value, self.field(key))

    def strings(self, key: str, *, pattern: Pattern[str], what: str) -> tuple[str, ...]:
        """A list of strings, or one comma-separated string (as Dubbo's ``methods`` parameter writes them)."""
        value = self.data.get(key)
        if value is None or value == "":
            return ()
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            raise BadRequest(self.field(key), f"expected an array of strings, got {json_type(value)}")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, str) or not pattern.fullmatch(item.strip()):
                raise BadRequest(f"{self.field(key)}[{i}]", f"{item!r} is not {what}")
            out.append(item.strip())
        return tuple(dict.fromkeys(out))

    def params(self, key: str, *, integers: Iterable[str] = ()) -> dict[str, str]:
        """An object of URL parameters: names and scalar values that fit in a registry URL."""
        obj = self.obj(key)
        out: dict[str, str] = {}
        for name, value in obj.data.items():
            field = obj.field(str(name))
            if not PARAM_NAME.fullmatch(name):
                raise BadRequest(field, "is not a usable URL parameter name")
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (str, int, float)):
                text = str(value)
            else:
                raise BadRequest(field, f"expected a string, got {json_type(value)}")
            if not PARAM_VALUE.fullmatch(text):
                raise BadRequest(field, f"{text!r} is not a URL parameter value (no '&', '#' or white space)")
            if name in integers and not INTEGER.fullmatch(text):
                raise BadRequest(field, f"{text!r} is not an integer")
            out[name] = text
        return out


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def endpoint_url(ep: Endpoint, path: str = "") -> str:
    """A provider as a registry URL: ``scheme://host:port[/path]?<every metadata parameter>``."""
    scheme = ep.metadata.get("protocol") or "dubbo"
    query = "&".join(f"{k}={v}" for k, v in ep.metadata.items())
    return f"{scheme}://{ep.address}{'/' + path if path else ''}" + (f"?{query}" if query else "")


class RegistryApi:
    """Base of the SOFA and Dubbo APIs; see the module docstring. ``config`` is the API's config section;
    ``resolve_path`` resolves its ``token_file`` (relative to the config file), read here."""

    kind = ""

    def __init__(self, config: Any, registry: Registry, model: ClusterModel, listeners: Sequence["Listener"],
                 add_listener: AddListener, *, resolve_path: Callable[[str], Path] = Path) -> None:
        self.config = config
        self.registry = registry
        self.model = model
        self.listeners = listeners
        self.add_listener = add_listener
        self.runner: web.AppRunner | None = None
        self.bound = ""
        self.lock = asyncio.Lock()
        self.app_host, self.app_port = split_host_port(config.app_address)
        key = f"registry_api.{self.kind}"
        self.auth = BearerAuth(load_token(config, key, resolve_path), key, refuse=self.failure)

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.prepare()
        web_app = web.Application(middlewares=[self.auth.middleware, self._errors])
        self.add_routes(web_app.router)
        host, port = split_host_port(self.config.address)
        self.runner = web.AppRunner(web_app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await site.start()
        self.bound = join_address(host, site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        log.info("%s registry API on %s (through discovery source %s)", self.kind, self.bound, self.registry.name)

    async def stop(self) -> None:
        """Stop serving. The registrations stay with the registry, which removes them when it shuts down."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def prepare(self) -> None:
        """Subclass hook, run before the HTTP server starts."""

    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def failure(self, status: int, message: str) -> web.Response:
        """An error reply in this API's shape."""
        raise NotImplementedError

    # -- requests -------------------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadRequest as exc:
            log.warning("%s registry API: %s %s refused: %s", self.kind, request.method, request.path, exc)
            return self.failure(400, str(exc))
        except RegistrationError as exc:
            log.warning("%s registry API: %s %s failed: %s", self.kind, request.method, request.path, exc)
            return self.failure(503, f"registry {self.config.registry} unavailable: {exc}")
        except web.HTTPException:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug costs one request, and says so
            log.exception("%s registry API: %s %s", self.kind, request.method, request.path)
            return self.failure(500, f"internal error: {type(exc).__name__}: {exc}")

    @staticmethod
    async def body(request: web.Request) -> Body:
        return Body.parse(await request.read())

    @staticmethod
    def reply(data: dict, status: int = 200) -> web.Response:
        return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=1))

    # -- registry steps -------------------------------------------------------------------------------
    async def publish(self, interface: str, address: str, **info: Any) -> Registration:
        """The registry's publish; its argument errors (``ValueError``) are the client's (400)."""
        try:
            return await self.registry.publish(interface, address, **info)
        except ValueError as exc:
            raise BadRequest("body", str(exc)) from None

    async def subscribe_consumer(self, interface: str, **info: Any) -> Registration:
        """Consumer entry + watch of ``interface``, all or nothing (the registry's contract)."""
        try:
            return await self.registry.subscribe_consumer(interface, self.app_host, **info)
        except ValueError as exc:
            raise BadRequest("body", str(exc)) from None

    async def unsubscribe_consumer(self, reg: Registration) -> None:
        await self.registry.unsubscribe_consumer(reg)

    async def unpublish(self, reg: Registration) -> None:
        if self.registry.registered(reg):
            await self.registry.unpublish(reg)

    async def wait_service(self, interface: str) -> None:
        """Wait up to ``subscribe_timeout`` for the first registry data of a subscribed interface."""
        await self.registry.wait_service(interface, self.config.subscribe_timeout)

    def providers(self, interface: str, group: str, version: str) -> list[Endpoint]:
        """The enabled endpoints of the interface's cluster for this group and version (``*`` = any)."""
        cluster = self.model.cluster(interface)
        if cluster is None:
            return []
        return [ep for ep in cluster.endpoints.values()
                if ep.enabled and (group == "*" or ep.group == group) and (version == "*" or ep.version == version)]
