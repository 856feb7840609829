"""The admin API (aiohttp; never on the forwarding path). Binds 127.0.0.1:15000 unless configured.

``GET /healthz`` ``GET /ready`` ``GET /clusters`` ``GET /routes`` ``GET /listeners`` ``GET /config_dump``
``GET /stats/prometheus`` ``POST /drain``; governance adds ``GET /rules`` and ``PUT /rules/{kind}``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from governance import RuleError
from meshd.config_types import split_host_port
from meshd.proxy.governor import KINDS

if TYPE_CHECKING:
    from meshd.app import Meshd


def _json(data: Any, status: int = 200) -> web.Response:
    import json
    return web.Response(text=json.dumps(data, indent=2, sort_keys=False) + "\n", status=status,
                        content_type="application/json")


class AdminServer:
    def __init__(self, app: "Meshd") -> None:
        self.meshd = app
        self.web = web.Application()
        r = self.web.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/ready", self.ready)
        r.add_get("/clusters", self.clusters)
        r.add_get("/routes", self.routes)
        r.add_get("/listeners", self.listeners)
        r.add_get("/config_dump", self.config_dump)
        r.add_get("/stats/prometheus", self.prometheus)
        r.add_post("/drain", self.drain)
        self.extra_routes(r)
        self.runner: web.AppRunner | None = None
        self.bound = ""
        self._drain_task: asyncio.Task | None = None

    def extra_routes(self, router: web.UrlDispatcher) -> None:
        """Components register their admin endpoints here (governance: /rules)."""
        for component in self.meshd.extras:
            add = getattr(component, "admin_routes", None)
            if add is not None:
                add(router)
        router.add_get("/rules", self.get_rules)
        router.add_put("/rules/{kind}", self.put_rules)

    async def start(self) -> None:
        host, port = split_host_port(self.meshd.config.admin.address)
        self.runner = web.AppRunner(self.web, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await site.start()
        sock = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
        self.bound = f"{host}:{sock[1]}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def healthz(self, request: web.Request) -> web.Response:
        if self.meshd.runtime is not None and self.meshd.runtime.draining:
            return web.Response(text="draining\n", status=503)
        return web.Response(text="ok\n")

    async def ready(self, request: web.Request) -> web.Response:
        m = self.meshd
        if m.ready:
            return _json({"ready": True})
        return _json({"ready": False, "waiting": m.ready_reasons}, status=503)

    async def clusters(self, request: web.Request) -> web.Response:
        m = self.meshd
        return _json({"clusters": m.clusters.to_json() if m.clusters else [],
                      "sources": [s.status() for s in m.sources]})

    async def routes(self, request: web.Request) -> web.Response:
        return _json({"route_configs": [t.to_json() for t in self.meshd.routes.values()]})

    async def listeners(self, request: web.Request) -> web.Response:
        return _json({"listeners": [x.to_json() for x in self.meshd.listeners], "admin": self.bound})

    async def config_dump(self, request: web.Request) -> web.Response:
        # SecretStr fields dump as '**********' in JSON mode: secrets never leave the process.
        return _json(self.meshd.config.model_dump(mode="json"))

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.meshd.stats.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_rules(self, request: web.Request) -> web.Response:
        return _json(self.meshd.runtime.governance.rules_json())

    async def put_rules(self, request: web.Request) -> web.Response:
        """Replace every rule of one kind, atomically: 400 with every problem and the old rules kept."""
        gov = self.meshd.runtime.governance
        kind = request.match_info["kind"]
        if kind not in KINDS:
            return _json({"error": f"unknown rule kind {kind!r}; known: {', '.join(KINDS)}"}, status=404)
        dialect = request.query.get("dialect", gov.config.dialect)
        if dialect not in ("go", "java"):
            return _json({"error": f"dialect must be go or java, got {dialect!r}"}, status=400)
        try:
            changed = gov.load(kind, await request.read(), dialect)
        except RuleError as err:
            return _json({"error": "rules rejected; the previous rules stay in force",
                          "errors": list(err.messages)}, status=400)
        return _json({"kind": kind, "dialect": dialect, "changed": changed,
                      "rules": len(gov.sentinel.rules(kind))})

    async def drain(self, request: web.Request) -> web.Response:
        rt = self.meshd.runtime
        if self._drain_task is None:
            self._drain_task = asyncio.create_task(self.meshd.drain())
        return _json({"draining": True, "in_flight": rt.in_flight if rt else 0}, status=202)
