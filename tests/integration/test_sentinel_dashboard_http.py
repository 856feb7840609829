"""The command center over real HTTP, driven as the Sentinel dashboard drives it, and its heartbeat.

The command center runs on 127.0.0.1 port 0; requests are the dashboard's (GET with query strings,
``POST setRules`` as a UTF-8 form, see ``SentinelApiClient``). The heartbeat goes to a small aiohttp
"dashboard" on 127.0.0.1 that records what ``/registry/machine`` receives, the way the dashboard's
``MachineRegistryController`` reads it (form fields).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from governance import ManualClock, Sentinel, StaticSystemMetrics
from meshd.sentinel_dashboard import (
    SENTINEL_VERSION, CommandCenter, CommandCenterServer, HeartbeatSender, SentinelDashboardConfig,
)

T0 = 1_700_000_000_000
FLOW = ('[{"clusterMode":false,"controlBehavior":0,"count":2.0,"grade":1,"limitApp":"default",'
        '"maxQueueingTimeMs":500,"regex":false,"resource":"svc:sayHello","strategy":0,"warmUpPeriodSec":10}]')


def _center() -> tuple[Sentinel, CommandCenter]:
    engine = Sentinel(clock=ManualClock(now_ms=T0), system_metrics=StaticSystemMetrics())

    def push(kind: str, document: list, dialect: str) -> str | None:
        engine.load_rules(kind, document, dialect, strict=True)
        return None

    return engine, CommandCenter(engine, push, hostname="mesh-host", ip="127.0.0.1")


async def _with_server(body) -> None:
    engine, center = _center()
    server = CommandCenterServer(center, "127.0.0.1:0")
    await server.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            await body(engine, server, http, f"http://{server.bound}")
    finally:
        await server.stop()


def test_commands_over_http():
    async def body(engine, server, http, base):
        assert server.port > 0 and server.bound.startswith("127.0.0.1:")
        async with http.get(f"{base}/version") as r:
            assert (r.status, await r.text()) == (200, SENTINEL_VERSION)
        # SentinelApiClient.setRulesAsync on a machine with v >= 1.7.1: POST form, UTF-8 entity
        async with http.post(f"{base}/setRules", data={"type": "flow", "data": FLOW}) as r:
            assert (r.status, await r.text()) == (200, "success")
        assert len(engine.rule_objects("flow")) == 1
        # SentinelApiClient.fetchRules: GET getRules?type=flow
        async with http.get(f"{base}/getRules?type=flow") as r:
            assert r.status == 200 and r.charset in (None, "utf-8")
            assert json.loads(await r.text()) == json.loads(FLOW)
        async with http.get(f"{base}/clusterNode?type=notZero") as r:
            assert json.loads(await r.text()) == []
        async with http.get(f"{base}/metric?startTime={T0}&endTime={T0 + 5000}&refetch=false") as r:
            assert (r.status, await r.text()) == (200, "")
        async with http.get(f"{base}/nope") as r:
            assert (r.status, await r.text()) == (400, "Unknown command `nope`")
        async with http.post(f"{base}/setRules", data=b"[]", headers={"Content-Type": "application/json"}) as r:
            assert (r.status, await r.text()) == (415, "Only form-encoded post request is supported")
        # GET setRules (a dashboard talking to a machine it believes older than 1.6.0)
        async with http.get(f"{base}/setRules", params={"type": "flow", "data": "[]"}) as r:
            assert (r.status, await r.text()) == (200, "success")
        assert engine.rule_objects("flow") == ()

    asyncio.run(_with_server(body))


def test_heartbeat_reaches_a_dashboard():
    async def body(engine, server, http, base):
        received: list[tuple[dict, str, bytes]] = []
        got = asyncio.Event()

        async def machine(request: web.Request) -> web.Response:
            raw = await request.read()
            received.append((dict(parse_qsl(raw.decode())), request.headers.get("Content-Type", ""), raw))
            got.set()
            return web.json_response({"success": True, "code": 0, "msg": "success"})

        app = web.Application()
        app.router.add_post("/registry/machine", machine)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        dashboard = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        sender = HeartbeatSender(dashboard, app="order-mesh", ip="127.0.0.1", port=lambda: server.port,
                                 interval=0.05, hostname="mesh-host", clock=lambda: T0)
        try:
            sender.start()
            await asyncio.wait_for(got.wait(), 5)
            while len(received) < 2:
                await asyncio.sleep(0.02)
        finally:
            await sender.stop()
            await runner.cleanup()
        fields, content_type, raw = received[0]
        assert fields == {"app": "order-mesh", "app_type": "0", "hostname": "mesh-host", "ip": "127.0.0.1",
                          "port": str(server.port), "v": SENTINEL_VERSION, "version": str(T0)}
        assert content_type == "application/x-www-form-urlencoded; charset=UTF-8"
        # the Java HashMap's order, as SimpleHttpClient.encodeRequestParams writes it
        assert [pair.split("=")[0] for pair in raw.decode().split("&")] == [
            "app", "hostname", "app_type", "port", "v", "ip", "version"]
        assert sender.sent >= 2 and sender.failures == 0

    asyncio.run(_with_server(body))


def test_heartbeat_survives_an_absent_dashboard():
    async def body(engine, server, http, base):
        # a port nobody listens on: bind one, learn it, close it
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        sender = HeartbeatSender(f"127.0.0.1:{port}", app="meshd", ip="127.0.0.1", port=lambda: server.port,
                                 interval=0.02, timeout=1.0)
        sender.start()
        while sender.failures < 3:
            await asyncio.sleep(0.02)
        await sender.stop()
        assert sender.sent == 0 and sender.failures >= 3

    asyncio.run(_with_server(body))


def test_config_defaults_are_sentinels():
    config = SentinelDashboardConfig()
    assert (config.address, config.dashboard, config.app, config.heartbeat_interval, config.ip) == (
        "127.0.0.1:8719", None, "meshd", 10.0, "127.0.0.1")
    custom = SentinelDashboardConfig.model_validate(
        {"address": "0.0.0.0:0", "dashboard": {"address": "10.0.0.9:8080"}, "heartbeat_interval": "5s", "ip": "10.0.0.5"})
    assert (custom.dashboard.address, custom.heartbeat_interval) == ("10.0.0.9:8080", 5.0)
    for bad in ({"ip": "meshd.local"}, {"heartbeat_interval": 10}, {"dashboard": {"address": "x"}}, {"extra": 1}):
        try:
            SentinelDashboardConfig.model_validate(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")
