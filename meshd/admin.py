"""The admin API (aiohttp; never on the forwarding path). Binds 127.0.0.1:15000 unless configured.

``GET /healthz`` ``GET /ready`` ``GET /clusters`` ``GET /clusters/{name}`` ``GET /routes`` ``GET /listeners``
``GET /certs`` ``GET /config_dump`` ``GET /stats/prometheus`` ``POST /drain``; runtime rules: ``GET /rules``,
``PUT /rules/{kind}`` (the ``http`` rule source), ``GET /rules/history[?kind=]``, ``GET /rules/status``,
``POST /rules/rollback {"kind", "version"}``.

Who may do what (``admin`` in the config; :mod:`meshd.auth`):

- ``admin.token`` or ``admin.token_file`` set: every mutating request (``PUT /rules/{kind}``,
  ``POST /rules/rollback``, ``POST /drain``, and any method but GET/HEAD/OPTIONS on any path, so endpoints
  added later are covered) needs ``Authorization: Bearer <token>``, compared in constant time; 401 otherwise,
  and nothing is applied. Reads stay open to loopback peers; peers off loopback need the token for reads too,
  but ``/healthz`` and ``/ready`` (probes). No token: everything is open, which the config allows only on a
  loopback ``address`` (``meshd run`` and ``meshd validate`` refuse ``0.0.0.0:15000`` without one, naming
  ``admin.token``).
- ``admin.tls`` (the listeners' ``tls`` block without ``plaintext``): HTTPS, certificates by SNI and rotated
  like a listener's (``GET /certs`` shows them as ``admin``); with ``client_ca`` clients are verified and
  must match ``allowed_sans`` (403 otherwise, counted under listener ``admin``), and the verified identity
  is the "who" of the audit line.
- Audit: every mutation that passed the check writes one line on logger ``meshd.audit`` (peer address and
  identity, method and path, status and what it did: ``applied, version 4``); a refused one a warning line.

The server is handed what it shows and the few callables it may call (:class:`AdminServer`'s arguments);
it knows nothing of the daemon object that owns them.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from configkit import split_host_port
from config_center.kinds import ALL_KINDS
from meshd.auth import AUDIT, IDENTITY, BearerAuth, load_token, peer

if TYPE_CHECKING:
    from config_center.center import ConfigCenter
    from discovery.source import Source
    from meshd.config import Config
    from meshd.proxy.context import Runtime
    from meshd.proxy.listener import Listener
    from meshd.routing.table import RouteTable
    from meshd.tls.context import ServerTls


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, indent=2, sort_keys=False) + "\n", status=status,
                        content_type="application/json")


def _outcome(result: Any) -> str:
    """A rule push's result for the audit line: ``applied, version 4`` / ``rejected, 2 error(s)``."""
    if not result.ok:
        return f"rejected, {len(result.errors)} error(s)"
    return f"{result.status}, version {result.version}"


class AdminServer:
    """The admin endpoints over one running meshd's parts.

    ``runtime`` gives the draining flag, the in-flight count, the governor, the clusters and the stats;
    ``rules`` is the config center (the rule store and its sources);
    ``sources``, ``routes`` and ``listeners`` are the live collections (read at each request);
    ``waiting()`` names what ``/ready`` still waits for (empty: ready); ``drain()`` drains the daemon;
    ``tls`` is the admin's TLS (``admin.tls``, registered by the daemon so that it rotates). The token file
    is read here (:class:`~meshd.auth.TokenError` when it cannot be used).
    """

    def __init__(self, config: "Config", runtime: "Runtime", rules: "ConfigCenter", *, sources: Sequence["Source"],
                 routes: Mapping[str, "RouteTable"], listeners: Sequence["Listener"],
                 waiting: Callable[[], Mapping[str, str]], drain: Callable[[], Awaitable[Any]],
                 listener_errors: Mapping[str, str] | None = None, tls: "ServerTls | None" = None) -> None:
        self.config = config
        self.runtime = runtime
        self.rules = rules
        self.sources = sources
        self.route_tables = routes
        self.listener_list = listeners
        self.listener_errors = listener_errors if listener_errors is not None else {}
        self.waiting = waiting
        self.start_drain = drain
        self.tls = tls
        self.auth = BearerAuth(load_token(config.admin, "admin", config.resolve_path), "admin",
                               open_paths=frozenset({"/healthz", "/ready"}))
        self.web = web.Application(middlewares=[self._client_cert, self.auth.middleware] if tls is not None
                                   else [self.auth.middleware])
        r = self.web.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/ready", self.ready)
        r.add_get("/clusters", self.clusters)
        r.add_get("/clusters/{name:.+}", self.cluster)
        r.add_get("/routes", self.routes)
        r.add_get("/listeners", self.listeners)
        r.add_get("/certs", self.certs)
        r.add_get("/config_dump", self.config_dump)
        r.add_get("/stats/prometheus", self.prometheus)
        r.add_post("/drain", self.drain)
        r.add_get("/rules", self.get_rules)
        r.add_get("/rules/history", self.rules_history)
        r.add_get("/rules/status", self.rules_status)
        r.add_post("/rules/rollback", self.rules_rollback)
        r.add_put("/rules/{kind}", self.put_rules)
        self.runner: web.AppRunner | None = None
        self.server: asyncio.AbstractServer | None = None
        self.bound = ""
        self._drain_task: asyncio.Task | None = None

    async def start(self) -> None:
        host, port = split_host_port(self.config.admin.address)
        self.runner = web.AppRunner(self.web, access_log=None)
        await self.runner.setup()
        spec = self.config.admin.tls
        # The listening server is made here, not by a TCPSite, which passes no TLS handshake timeout on.
        self.server = await asyncio.get_running_loop().create_server(
            self.runner.server, host, port, reuse_address=True,
            ssl=self.tls.front() if self.tls is not None else None,
            ssl_handshake_timeout=spec.handshake_timeout if self.tls is not None and spec is not None else None)
        self.bound = f"{host}:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.runner is not None:
            await self.runner.cleanup()

    @web.middleware
    async def _client_cert(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """With ``admin.tls``: the client's certificate must pass ``allowed_sans`` (403 otherwise, counted under
        listener ``admin``); the verified identity is the audited "who" (``request[IDENTITY]``)."""
        transport = request.transport
        identity, reason = self.tls.admit(transport.get_extra_info("peercert") if transport is not None else None)
        if reason:
            if self.runtime.tls is not None:
                self.runtime.tls.errors.record("admin", reason, peer(request)[1])
            response = _json({"error": f"client certificate refused: {reason}"}, status=403)
            response.force_close()
            return response
        request[IDENTITY] = identity
        return await handler(request)

    async def healthz(self, request: web.Request) -> web.Response:
        if self.runtime.draining:
            return web.Response(text="draining\n", status=503)
        return web.Response(text="ok\n")

    async def ready(self, request: web.Request) -> web.Response:
        waiting = dict(self.waiting())
        if not waiting:
            return _json({"ready": True})
        return _json({"ready": False, "waiting": waiting}, status=503)

    async def clusters(self, request: web.Request) -> web.Response:
        return _json({"clusters": self.runtime.clusters.to_json(), "sources": [s.status() for s in self.sources]})

    async def cluster(self, request: web.Request) -> web.Response:
        """One cluster (for large meshes, where ``/clusters`` is megabytes)."""
        name = request.match_info["name"]
        data = self.runtime.clusters.cluster_json(name)
        if data is None:
            return _json({"error": f"no cluster named {name!r}"}, status=404)
        return _json(data)

    async def routes(self, request: web.Request) -> web.Response:
        return _json({"route_configs": [t.to_json() for t in self.route_tables.values()]})

    async def listeners(self, request: web.Request) -> web.Response:
        return _json({"listeners": [x.to_json() for x in self.listener_list], "admin": self.bound,
                      "errors": dict(self.listener_errors)})

    async def certs(self, request: web.Request) -> web.Response:
        """Every TLS context: its certificates (subject, SANs, serial, not-after, file), last error, handshake
        failures by listener and reason."""
        tls = self.runtime.tls
        return _json(tls.to_json() if tls is not None else {"tls": [], "handshake_errors": []})

    async def config_dump(self, request: web.Request) -> web.Response:
        # SecretStr fields dump as '**********' in JSON mode: secrets never leave the process.
        dump = self.config.model_dump(mode="json")
        dump["dynamic"] = {s.name: s.config_dump() for s in self.sources if hasattr(s, "config_dump")}
        return _json(dump)

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.runtime.stats.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_rules(self, request: web.Request) -> web.Response:
        store = self.rules.store
        out = self.runtime.governance.rules_json()
        for kind in ALL_KINDS:
            entry = out.setdefault(kind, {"rules": store.document(kind) or {}})
            current = store.current.get(kind)
            entry["version"] = current.version if current is not None else None
        return _json(out)

    async def put_rules(self, request: web.Request) -> web.Response:
        """Replace every rule of one kind, atomically: 400 with every problem and the old rules kept."""
        kind = request.match_info["kind"]
        store = self.rules.store
        if kind not in store.kinds:
            return _json({"error": f"unknown rule kind {kind!r}; known: {', '.join(store.kinds)}"}, status=404)
        http = self.rules.http
        if http is None:
            return _json({"error": "no http rule source is configured (config_center.sources): rules are pushed "
                                   "through the configured sources"}, status=405)
        owner = store.owners.get(kind)
        if owner is not None and owner != http.name:
            return _json({"error": f"rule kind {kind!r} is owned by rule source {owner!r}; push it there"}, status=409)
        spec = store.kinds[kind]
        dialect = request.query.get("dialect", http.dialect or spec.default_dialect) if spec.dialects else None
        if spec.dialects and dialect not in spec.dialects:
            return _json({"error": f"dialect must be {' or '.join(spec.dialects)}, got {dialect!r}"}, status=400)
        result = await http.put(kind, await request.read(), dialect)
        await store.flush()                   # answered once the applied document is on disk
        request[AUDIT] = _outcome(result)
        if not result.ok:
            return _json({"error": "rules rejected; the previous rules stay in force", "errors": list(result.errors)},
                         status=400)
        response = _json({"kind": kind, "dialect": dialect, "changed": result.status == "applied",
                          "rules": len(spec.entries(store.document(kind)))})
        response.headers["X-Meshd-Rules-Version"] = str(result.version)
        return response

    async def rules_history(self, request: web.Request) -> web.Response:
        kind = request.query.get("kind")
        if kind is not None and kind not in self.rules.store.kinds:
            return _json({"error": f"unknown rule kind {kind!r}"}, status=404)
        return _json({"history": self.rules.store.history_json(kind)})

    async def rules_status(self, request: web.Request) -> web.Response:
        return _json(self.rules.status())

    async def rules_rollback(self, request: web.Request) -> web.Response:
        """Re-apply an earlier document of one kind (``{"kind": "flow", "version": 3}``) as a new version."""
        try:
            body = json.loads(await request.read() or b"null")
            kind, version = body["kind"], body["version"]
            if kind not in self.rules.store.kinds or isinstance(version, bool) or not isinstance(version, int):
                raise ValueError
        except (ValueError, TypeError, KeyError):
            return _json({"error": 'expected {"kind": <rule kind>, "version": <integer>}; known kinds: '
                                   f"{', '.join(self.rules.store.kinds)}"}, status=400)
        result = await self.rules.store.rollback(kind, version)
        await self.rules.store.flush()
        request[AUDIT] = f"{kind} to version {version}: {_outcome(result)}"
        return _json(result.to_json(), status=200 if result.ok else 409)

    async def drain(self, request: web.Request) -> web.Response:
        request[AUDIT] = "draining" if self._drain_task is None else "already draining"
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self.start_drain())
        return _json({"draining": True, "in_flight": self.runtime.in_flight}, status=202)
