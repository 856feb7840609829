"""End to end: Sentinel-compatible governance inside ``meshd run``: blocks, breakers, rule pushes, metrics."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from integration import peers
from tests.e2e.test_rpc_proxy import IFACE, Raw, dubbo_request, rpc_config, summary

needs_peers = pytest.mark.skipif(not peers.installed(), reason=peers.missing_reason() or
                                 "third-party peers not installed: run `python -m integration.peers install`")



@needs_peers
def test_qps_rule_blocks_exactly_the_excess_calls_of_a_real_consumer(meshd_run):
    node, port = peers.start_server("dubbo_provider.js", "--port", "0")
    try:
        config = rpc_config([{"name": IFACE, "endpoints": [{"address": f"127.0.0.1:{port}"}]}])
        config["governance"] = {"dialect": "go", "flow": [
            {"resource": f"{IFACE}:greet", "threshold": 5, "tokenCalculateStrategy": 0, "controlBehavior": 0}]}
        m = meshd_run(config)
        out = peers.run_node("dubbo_consumer.js", "--address", f"127.0.0.1:{m.port('dubbo')}", "--method", "greet",
                             "--args", '["x"]', "--count", "20", "--concurrency", "20")
        results = [x for x in peers.json_lines(out.stdout) if x.get("event") == "result"]
        assert summary(out)["ok"] == 5
        blocked = [r for r in results if not r["ok"]]
        assert len(blocked) == 15
        assert all("flow reject check blocked" in r["error"]["message"] and "BlockTypeFlowControl" in
                   r["error"]["message"] for r in blocked), blocked[0]
        raw = Raw(m.port("dubbo"), "dubbo")
        raw.send(dubbo_request(method="greet", rid=3))
        ev = raw.read()
        assert (ev.request_id, ev.status) == (3, 100), "SERVER_THREADPOOL_EXHAUSTED_ERROR on the wire"
        prom = m.admin("/stats/prometheus")[1]
        assert f'meshd_governance_handled_total{{block_type="BlockTypeFlowControl",resource="{IFACE}:greet",' \
               f'result="block"}} 16.0' in prom
        assert f'meshd_governance_handled_total{{block_type="",resource="{IFACE}:greet",result="pass"}} 5.0' in prom
    finally:
        node.stop()


def test_breaker_opens_on_a_failing_provider_and_closes_after_recovery(meshd_run, provider):
    p = provider("dubbo", "flaky")
    config = rpc_config([{"name": IFACE, "endpoints": [{"address": p.address}]}])
    config["governance"] = {"dialect": "go", "circuit_breaker": [
        {"resource": f"{IFACE}:sayHello", "strategy": 2, "threshold": 3, "minRequestAmount": 3,
         "statIntervalMs": 10000, "retryTimeoutMs": 600}]}
    m = meshd_run(config)
    raw = Raw(m.port("dubbo"), "dubbo")

    def call(rid):
        raw.send(dubbo_request(rid=rid))
        return raw.read()

    p.script.exception = "java.lang.IllegalStateException: boom"     # exception results count as errors
    assert [call(i).status for i in range(3)] == [20, 20, 20]
    seen = len(p.script.requests)
    blocked = call(10)
    assert blocked.status == 100 and "circuit breaker check blocked" in blocked.error_message()
    assert len(p.script.requests) == seen, "an open breaker keeps calls away from the provider"
    p.script.exception = None
    time.sleep(0.7)
    probe = call(11)
    assert (probe.status, probe.result().value) == (20, "flaky:sayHello:x")
    assert [call(i).status for i in range(12, 15)] == [20, 20, 20]
    prom = m.admin("/stats/prometheus")[1]
    for old, new in (("Closed", "Open"), ("Open", "HalfOpen"), ("HalfOpen", "Closed")):
        assert f'meshd_governance_breaker_state_changed_total{{from="{old}",resource="{IFACE}:sayHello",' \
               f'to="{new}"}} 1.0' in prom, prom
    assert f'meshd_governance_breaker_state{{resource="{IFACE}:sayHello"}} 0.0' in prom


def http_config(backend):
    return {
        "listeners": [{"name": "http", "address": "127.0.0.1:0", "protocol": "http", "route_config": "main"}],
        "route_configs": [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/api/"}, "route": {"cluster": "c"}}]}]}],
        "clusters": [{"name": "c", "endpoints": [{"address": backend.address}]}],
    }


def get(port, path="/api/x"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers={"Host": "svc"})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_rules_pushed_at_runtime_take_effect_on_the_next_request(meshd_run, http_backend):
    b = http_backend("b")
    m = meshd_run(http_config(b))
    port = m.port("http")
    assert get(port)[0] == 200
    status, body = m.admin("/rules/flow?dialect=go", "PUT", json.dumps(
        [{"resource": "GET:svc/api/", "threshold": 0}]).encode())
    assert status == 200 and json.loads(body) == {"kind": "flow", "dialect": "go", "changed": True, "rules": 1}
    assert get(port) == (429, b"meshd: request blocked by governance rule\n")
    status, body = m.admin("/rules/flow?dialect=go", "PUT", json.dumps(
        [{"resource": "GET:svc/api/", "threshold": 100}, {"resource": "x", "threshold": -5}]).encode())
    assert status == 400
    errors = json.loads(body)["errors"]
    assert len(errors) == 1 and "threshold" in errors[0] and '"x"' in errors[0]
    assert get(port)[0] == 429, "a rejected document leaves the old rules in force"
    status, _ = m.admin("/rules/flow?dialect=java", "PUT", json.dumps(
        [{"resource": "GET:svc/api/", "grade": 1, "count": 1000, "limitApp": "default"}]).encode())
    assert status == 200 and get(port)[0] == 200
    rules = m.admin_json("/rules")
    assert rules["flow"]["dialect"] == "java" and rules["flow"]["rules"][0]["count"] == 1000
    assert m.admin("/rules/flow", "PUT", b"[]")[0] == 200 and get(port)[0] == 200
    assert m.admin("/rules/nonsense", "PUT", b"[]")[0] == 404


def test_throttled_requests_wait_instead_of_failing(meshd_run, http_backend):
    b = http_backend("b")
    config = http_config(b)
    config["governance"] = {"flow": [{"resource": "GET:svc/api/", "threshold": 10, "controlBehavior": 1,
                                      "maxQueueingTimeMs": 2000}]}
    m = meshd_run(config)
    import concurrent.futures
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(lambda _: get(m.port("http"))[0], range(5)))
    assert statuses == [200] * 5
    assert time.monotonic() - t0 >= 0.35, "10 QPS uniform spacing: the fifth request waits ~400 ms"


def test_breaker_block_on_http_answers_503(meshd_run, http_backend):
    b = http_backend("b")
    b.script.status = 500
    config = http_config(b)
    config["governance"] = {"circuit_breaker": [{"resource": "GET:svc/api/", "strategy": 1, "threshold": 0.5,
                                                 "minRequestAmount": 2, "statIntervalMs": 10000,
                                                 "retryTimeoutMs": 60000}]}
    m = meshd_run(config)
    assert [get(m.port("http"))[0] for _ in range(2)] == [500, 500]
    assert get(m.port("http"))[0] == 503


def test_sentinel_metric_log_is_written_when_enabled(meshd_run, http_backend, tmp_path):
    b = http_backend("b")
    config = http_config(b)
    log = tmp_path / "meshd-metrics.log"
    config["governance"] = {"flow": [{"resource": "GET:svc/api/", "threshold": 2}],
                            "metric_log": {"path": str(log)}}
    m = meshd_run(config)
    statuses = [get(m.port("http"))[0] for _ in range(5)]
    assert sorted(statuses) == [200, 200, 429, 429, 429]
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [x for x in (log.read_text().splitlines() if log.exists() else []) if "|GET:svc/api/|" in x]
        if sum(int(x.split("|")[3]) for x in lines) >= 2:
            break
        time.sleep(0.1)
    fields = [x.split("|") for x in lines]
    # ts|date|resource|passQps|blockQps|completeQps|errorQps|avgRt|occupiedPassQps|concurrency|classification
    assert fields and all(len(f) == 11 for f in fields)
    assert (sum(int(f[3]) for f in fields), sum(int(f[4]) for f in fields)) == (2, 3)
