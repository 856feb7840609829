"""End to end: ``meshd run`` managed the way a stock Sentinel dashboard manages an app — the machine heartbeat,
getRules, setRules through the rule store (source ``dashboard``, Java dialect), metric lines for a resource
under load, and the global switch — with the dashboard's own request strings (``SentinelApiClient``)."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import urllib.request

from aiohttp import web

from integration.ports import free_port

RESOURCE = "GET:svc/api/"


def config(backend, command_port: int, dashboard_port: int, tmp_path) -> dict:
    (tmp_path / "rules").mkdir()
    return {
        "listeners": [{"name": "http", "address": "127.0.0.1:0", "protocol": "http", "route_config": "main"}],
        "route_configs": [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/api/"}, "route": {"cluster": "c"}}]}]}],
        "clusters": [{"name": "c", "endpoints": [{"address": backend.address}]}],
        "config_center": {"sources": [{"type": "http"}, {"type": "file", "path": str(tmp_path / "rules"),
                                                         "kinds": ["circuit_breaker"]}]},
        "sentinel_dashboard": {"address": f"127.0.0.1:{command_port}", "app": "order-mesh",
                               "dashboard": {"address": f"127.0.0.1:{dashboard_port}"}, "heartbeat_interval": "200ms"},
        "access_log": {"path": None},
    }


def get(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/api/x", headers={"Host": "svc"})
    status = conn.getresponse().status
    conn.close()
    return status


class CommandApi:
    """The dashboard's side of the command center (SentinelApiClient's requests)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, command: str, **params: str) -> tuple[int, str]:
        query = urllib.parse.urlencode(params)
        return self._send(urllib.request.Request(f"{self.base}/{command}" + (f"?{query}" if query else "")))

    def post(self, command: str, **form: str) -> tuple[int, str]:
        # SentinelApiClient.executeCommand(..., isPost=true): a UTF-8 url-encoded form entity
        body = urllib.parse.urlencode(form).encode()
        return self._send(urllib.request.Request(f"{self.base}/{command}", data=body, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}))

    @staticmethod
    def _send(req) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def java_flow(count: float) -> str:
    """What the dashboard's FlowRuleEntity.toRule() serialises for a QPS rule of ``count``."""
    return json.dumps([{"resource": RESOURCE, "limitApp": "default", "grade": 1, "count": count, "strategy": 0,
                        "controlBehavior": 0, "clusterMode": False}])


def parse_metric_line(line: str) -> dict:
    """MetricFetcher / MetricNode.fromThinString: ``timestamp|resource|pass|block|success|exception|rt|...``."""
    parts = line.split("|")
    return {"timestamp": int(parts[0]), "resource": parts[1], "pass": int(parts[2]), "block": int(parts[3]),
            "success": int(parts[4]), "exception": int(parts[5]), "rt": int(parts[6])}


def test_the_dashboard_manages_meshd(meshd_run, http_backend, loop_thread, tmp_path):
    beats: list[dict] = []

    async def registry_machine(request: web.Request) -> web.Response:
        beats.append(dict(await request.post()))
        return web.json_response({"success": True, "code": 0, "msg": "success"})

    async def start_dashboard() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/registry/machine", registry_machine)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", dashboard_port).start()
        return runner

    dashboard_port, command_port = free_port(), free_port()
    runner = loop_thread.run(start_dashboard())
    try:
        m = meshd_run(config(http_backend("b"), command_port, dashboard_port, tmp_path))
        api = CommandApi(command_port)
        http_port = m.port("http")

        deadline = time.monotonic() + 10
        while not beats:
            assert time.monotonic() < deadline, "no heartbeat reached the dashboard"
            time.sleep(0.05)
        beat = beats[0]
        assert (beat["app"], beat["ip"], beat["port"], beat["app_type"]) == ("order-mesh", "127.0.0.1",
                                                                            str(command_port), "0")
        assert tuple(int(x) for x in beat["v"].split(".")[:2]) >= (1, 8), "POST setRules needs v >= 1.6.0"

        assert api.get("version")[0] == 200
        assert json.loads(api.get("getRules", type="flow")[1]) == []
        assert api.post("setRules", type="flow", data=java_flow(0)) == (200, "success")
        assert get(http_port) == 429, "the dashboard's rule is in force"
        entry = m.admin_json("/rules/history?kind=flow")["history"][-1]
        assert (entry["source"], entry["dialect"], entry["status"]) == ("dashboard", "java", "applied")
        shown = json.loads(api.get("getRules", type="flow")[1])
        assert shown[0]["resource"] == RESOURCE and shown[0]["count"] == 0 and shown[0]["grade"] == 1

        status, reply = api.post("setRules", type="flow", data=json.dumps([{"resource": RESOURCE, "count": -1}]))
        assert status == 400 and "count" in reply
        assert get(http_port) == 429, "a rejected push leaves the rule in force"
        status, reply = api.post("setRules", type="degrade", data="[]")
        assert status == 400 and "owned by source 'file'" in reply, reply

        assert api.get("setSwitch", value="false") == (200, "Sentinel set switch value: false")
        assert get(http_port) == 200, "switched off: nothing is checked"
        assert api.get("getSwitch") == (200, "Sentinel switch value: false")
        api.get("setSwitch", value="true")
        assert get(http_port) == 429

        api.post("setRules", type="flow", data=java_flow(10000))
        started = int(time.time() * 1000)
        for _ in range(30):
            assert get(http_port) == 200
        time.sleep(1.2)                                # the metric command serves whole seconds only
        status, text = api.get("metric", startTime=str(started - 1000), endTime=str(int(time.time() * 1000)),
                               refetch="false", identity=RESOURCE)
        assert status == 200, text
        lines = [parse_metric_line(x) for x in text.splitlines() if x]
        assert lines and all(x["resource"] == RESOURCE for x in lines)
        assert sum(x["pass"] for x in lines) == 30 and sum(x["success"] for x in lines) == 30
        nodes = json.loads(api.get("clusterNode", type="zero")[1])
        assert any(n["resource"] == RESOURCE for n in nodes)
    finally:
        loop_thread.run(runner.cleanup())
