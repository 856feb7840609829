"""The v1 HTTP Open API (aiohttp) and the UDP push of the test Nacos server.

Routes (all under ``/nacos``; parameters may come in the query string or a form body, as with the real server):

- naming: ``POST|DELETE|PUT|GET /v1/ns/instance``, ``GET /v1/ns/instance/list`` (``udpPort`` > 0 makes the
  caller a UDP subscriber), ``PUT /v1/ns/instance/beat`` (an unknown instance is re-registered from the beat,
  as the 2.x server does; ``code`` 20404 only when there is no beat body), ``GET /v1/ns/service/list``,
  ``GET /v1/ns/operator/metrics``;
- config: ``GET|POST|DELETE /v1/cs/configs`` (GET of a missing item: HTTP 404 ``config data not exist``),
  ``POST /v1/cs/configs/listener`` (long polling: answers at once when an md5 differs or with
  ``Long-Pulling-No-Hangup: true``, else holds up to ``Long-Pulling-Timeout`` − 500 ms);
- auth: ``POST /v1/auth/login`` and ``/v1/auth/users/login`` hand out a token (no checks are enforced).

UDP push (``naming/.../push/UdpPushService.java``): ``{"type": "dom", "data": "<ServiceInfo JSON>",
"lastRefTime": <nonce>}`` to each subscriber; the ack ``{"type": "push-ack", "lastRefTime": <nonce>}`` marks
the record in :attr:`HttpFrontend.udp_pushes`; an unacked push is resent after 1 s (twice at most).
Datagrams go to the address the HTTP request came from (always loopback here) and the ``udpPort`` it named —
never to the ``clientIP`` parameter, which clients fill with a LAN address; a non-loopback target is refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import logging
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from integration.nacos.handlers import instance_from_json
from integration.nacos.model import DEFAULT_CLUSTER, namespace_of, split_service

if TYPE_CHECKING:
    from integration.nacos.core import Core, UdpSubscriber

log = logging.getLogger("integration.nacos.http")
WORD, LINE = "\x02", "\x01"


@dataclass
class UdpPush:
    target: tuple[str, int]
    nonce: int
    packet: bytes
    acked: bool | None = None
    sends: int = 0
    at: float = field(default_factory=time.monotonic)


def _bool(value: str | None, default: bool) -> bool:
    return default if value in (None, "") else str(value).lower() == "true"


def _metadata(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return {str(k): str(v) for k, v in data.items()}
    except (ValueError, AttributeError):  # the old "k=v,k=v" form
        return dict(kv.split("=", 1) for kv in raw.split(",") if "=" in kv)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, frontend: "HttpFrontend") -> None:
        self.frontend = frontend

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.frontend.on_ack(data, addr)


class HttpFrontend:
    """aiohttp application on ``127.0.0.1:port`` plus a loopback UDP socket for pushes."""

    def __init__(self, core: "Core") -> None:
        self.core = core
        self.udp_pushes: list[UdpPush] = []
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._nonce = itertools.count(time.monotonic_ns())
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, port: int) -> None:
        app = web.Application()
        r = app.router
        r.add_route("*", "/nacos/v1/ns/instance", self.instance)
        r.add_get("/nacos/v1/ns/instance/list", self.instance_list)
        r.add_put("/nacos/v1/ns/instance/beat", self.beat)
        r.add_get("/nacos/v1/ns/service/list", self.service_list)
        r.add_get("/nacos/v1/ns/operator/metrics", self.metrics)
        r.add_route("*", "/nacos/v1/cs/configs", self.configs)
        r.add_post("/nacos/v1/cs/configs/listener", self.listener)
        r.add_post("/nacos/v1/auth/login", self.login)
        r.add_post("/nacos/v1/auth/users/login", self.login)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=("127.0.0.1", 0))
        self._udp = transport  # type: ignore[assignment]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.can_read_body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.core.record_request("http", f"{request.method} {request.path}", params, str(request.remote))
        return params

    # ------------------------------------------------------------------ naming
    def _key(self, p: dict[str, str]) -> tuple[str, str, str]:
        group, name = split_service(p.get("serviceName", ""), p.get("groupName"))
        return namespace_of(p.get("namespaceId")), group, name

    async def instance(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        key = self._key(p)
        if not key[2] or not p.get("ip") or not p.get("port", "").isdigit():
            return web.Response(status=400, text="caused: serviceName, ip and port are required;")
        ip, port, cluster = p["ip"], int(p["port"]), p.get("clusterName") or DEFAULT_CLUSTER
        if request.method == "GET":
            svc = self.core.naming.service(key)
            inst = svc.instances.get((ip, port, cluster)) if svc else None
            if inst is None:
                return web.Response(status=404, text="no ips found for cluster")
            return web.json_response({**inst.to_json(key[1], key[2]), "service": f"{key[1]}@@{key[2]}"})
        if request.method == "DELETE":
            changed = self.core.naming.deregister(key, ip, port, p.get("clusterName"))
            self.core.services_changed([changed] if changed else [])
            return web.Response(text="ok")
        ephemeral = _bool(p.get("ephemeral"), True)
        enabled = p.get("enabled", p.get("enable"))
        fields = {"weight": float(p["weight"]) if p.get("weight") else None,
                  "enabled": _bool(enabled, True) if enabled else None,
                  "healthy": _bool(p.get("healthy"), True) if p.get("healthy") else None,
                  "metadata": _metadata(p.get("metadata")) if p.get("metadata") else None}
        if request.method == "PUT":
            changed = self.core.naming.update(key, ip, port, cluster, **fields)
            if changed is None:
                return web.Response(status=400, text=f"caused: instance not exist: {ip}:{port};")
            self.core.services_changed([changed])
            return web.Response(text="ok")
        if request.method != "POST":
            return web.Response(status=405)
        raw = {"ip": ip, "port": port, "clusterName": cluster, "ephemeral": ephemeral,
               **{k: v for k, v in fields.items() if v is not None}}
        inst = instance_from_json(raw, "beat" if ephemeral else "persistent")
        self.core.services_changed([self.core.naming.register(key, inst)])
        return web.Response(text="ok")

    async def instance_list(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        key = self._key(p)
        clusters = p.get("clusters", "")
        udp_port = int(p.get("udpPort") or 0)
        if udp_port > 0 and request.remote:
            from integration.nacos.core import UdpSubscriber
            self.core.subscribe_udp(key, UdpSubscriber(request.remote, udp_port, clusters, p.get("clientIP", "")))
        info = self.core.service_info(key, clusters, _bool(p.get("healthyOnly"), False), grouped_name=True)
        info["cacheMillis"] = 10000 if udp_port > 0 else 3000
        return web.json_response(info)

    async def beat(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        beat = json.loads(p["beat"]) if p.get("beat") else None
        if beat is not None and not p.get("serviceName"):
            p["serviceName"] = beat.get("serviceName", "")
        key = self._key(p)
        ip = (beat or {}).get("ip") or p.get("ip", "")
        port = int((beat or {}).get("port") or p.get("port") or 0)
        cluster = (beat or {}).get("cluster") or p.get("clusterName") or DEFAULT_CLUSTER
        if not self.core.naming.beat(key, ip, port, cluster, time.monotonic()):
            if beat is None:
                return web.json_response({"code": 20404, "clientBeatInterval": 5000, "lightBeatEnabled": True})
            raw = {"ip": ip, "port": port, "clusterName": cluster, "weight": beat.get("weight", 1.0),
                   "metadata": beat.get("metadata") or {}, "ephemeral": True}
            self.core.services_changed([self.core.naming.register(key, instance_from_json(raw, "beat"))])
        return web.json_response({"clientBeatInterval": 5000, "code": 10200, "lightBeatEnabled": True})

    async def service_list(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        names = self.core.naming.service_names(namespace_of(p.get("namespaceId")), p.get("groupName") or "DEFAULT_GROUP")
        page_no, page_size = max(int(p.get("pageNo") or 1), 1), max(int(p.get("pageSize") or 20), 1)
        return web.json_response({"count": len(names), "doms": names[(page_no - 1) * page_size: page_no * page_size]})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "UP", "serviceCount": len(self.core.naming.services)})

    # ------------------------------------------------------------------ UDP push
    def push_udp(self, sub: "UdpSubscriber", info: dict[str, Any]) -> UdpPush | None:
        nonce = next(self._nonce)
        packet = json.dumps({"type": "dom", "data": json.dumps(info), "lastRefTime": nonce}).encode()
        return self.push_udp_raw((sub.host, sub.port), packet, nonce)

    def push_udp_raw(self, target: tuple[str, int], packet: bytes, nonce: int | None = None) -> UdpPush | None:
        if self._udp is None or not ipaddress.ip_address(target[0]).is_loopback:
            log.warning("UDP push to %s refused (not loopback, or server stopped)", target)
            return None
        push = UdpPush(target, nonce if nonce is not None else next(self._nonce), packet)
        self.udp_pushes.append(push)
        task = asyncio.ensure_future(self._send_until_acked(push))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return push

    async def _send_until_acked(self, push: UdpPush) -> None:
        while push.acked is None and push.sends < 3 and self._udp is not None:
            self._udp.sendto(push.packet, push.target)
            push.sends += 1
            await asyncio.sleep(1.0)
        if push.acked is None:
            push.acked = False

    def on_ack(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            ack = json.loads(data)
            nonce = int(ack.get("lastRefTime"))
        except (ValueError, TypeError, AttributeError):
            log.warning("bad UDP ack from %s: %r", addr, data[:200])
            return
        for push in self.udp_pushes:
            if push.nonce == nonce and push.target[1] == addr[1]:
                push.acked = True

    # ------------------------------------------------------------------ config
    async def configs(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        key = (namespace_of(p.get("tenant") or p.get("namespaceId")), p.get("group") or "DEFAULT_GROUP",
               p.get("dataId", ""))
        if not key[2]:
            return web.Response(status=400, text="caused: dataId is required;")
        if request.method == "GET":
            item = self.core.configs.get(key)
            if item is None:
                return web.Response(status=404, text="config data not exist")
            return web.Response(text=item.content, headers={"Content-MD5": item.md5, "Config-Type": item.type,
                                                            "Last-Modified": str(item.last_modified)})
        if request.method == "DELETE":
            if self.core.configs.remove(key):
                self.core.config_changed(key)
            return web.Response(text="true")
        if request.method != "POST":
            return web.Response(status=405)
        content = p.get("content")
        if content is None or not content.strip():
            return web.Response(status=400, text="caused: content is blank;")
        if not self.core.configs.publish(key, content, p.get("casMd5"), p.get("type") or "text", p.get("appName", "")):
            return web.Response(status=409, text="cas publish fail")
        self.core.config_changed(key)
        return web.Response(text="true")

    async def listener(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        probes = []
        for line in p.get("Listening-Configs", "").split(LINE):
            parts = line.split(WORD)
            if len(parts) >= 3:
                tenant = parts[3] if len(parts) > 3 else ""
                probes.append(((namespace_of(tenant), parts[1], parts[0]), parts[2], tenant))
        timeout_ms = int(request.headers.get("Long-Pulling-Timeout") or 30000)
        changed = self._changed(probes)
        if not changed and request.headers.get("Long-Pulling-No-Hangup") != "true":
            await self.core.wait_config_change([k for k, _, _ in probes], max(timeout_ms - 500, 0) / 1000)
            changed = self._changed(probes)
        text = "".join(f"{d}{WORD}{g}{WORD + t if t else ''}{LINE}" for (_, g, d), _, t in changed)
        return web.Response(text=urllib.parse.quote_plus(text), content_type="text/plain")

    def _changed(self, probes: list[tuple[Any, str, str]]) -> list[tuple[Any, str, str]]:
        return [pr for pr in probes if (pr[1] or "") != self.core.configs.md5(pr[0])]

    async def login(self, request: web.Request) -> web.Response:
        p = await self._params(request)
        self.core.logins.append(p.get("username", ""))
        return web.json_response({"accessToken": uuid.uuid4().hex, "tokenTtl": 18000, "globalAdmin": True,
                                  "username": p.get("username", "")})
