"""End to end: subsets and fallbacks, retries, timeouts, health checking, outlier detection, panic mode,
zone preference and cluster circuit breakers — scriptable HTTP, Dubbo and Bolt upstreams, exact counts."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import time

import pytest

from tests.e2e.test_rpc_proxy import IFACE, Raw, rpc_config
from meshd.codec import bolt, dubbo



def http_config(route: dict, cluster: dict, **listener) -> dict:
    return {
        "listeners": [{"name": "http", "address": "127.0.0.1:0", "protocol": "http", "route_config": "main",
                       **listener}],
        "route_configs": [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "c", **route}}]}]}],
        "clusters": [{"name": "c", **cluster}],
    }


def get(port, path="/", method="GET", headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def server(data: bytes) -> str:
    return json.loads(data)["server"]


def dubbo_call(raw: Raw, rid: int, version: str = "1.0.0", attachments: dict | None = None):
    raw.send(dubbo.encode_request(rid, IFACE, "sayHello", [str(rid)], param_types=["java.lang.String"],
                                  version=version, attachments=attachments))
    return raw.read()


def answered_by(ev) -> str | None:
    return ev.result().value.split(":")[0] if ev.status == 20 else None


# ---------------------------------------------------------------------------------------------- subsets
@pytest.mark.parametrize("policy, expected", [("no_fallback", {None}), ("any_endpoint", {"v1", "v2", "gray"}),
                                              ("default_subset", {"v1"})])
def test_subset_fallback_policies_for_a_missing_version(meshd_run, provider, policy, expected):
    v1, v2, gray = provider("dubbo", "v1"), provider("dubbo", "v2"), provider("dubbo", "gray")
    m = meshd_run(rpc_config([{"name": IFACE, "subset": {
        "selectors": [["version"]], "fallback_policy": policy, "default_subset": {"version": "1.0.0"}},
        "endpoints": [{"address": v1.address, "metadata": {"version": "1.0.0"}},
                      {"address": v2.address, "metadata": {"version": "2.0.0"}},
                      {"address": gray.address, "metadata": {"version": "2.0.0", "tag": "gray"}}]}]))
    raw = Raw(m.port("dubbo"), "dubbo")
    assert {answered_by(dubbo_call(raw, i, "1.0.0")) for i in range(8)} == {"v1"}
    assert {answered_by(dubbo_call(raw, i, "2.0.0")) for i in range(10, 20)} == {"v2", "gray"}
    answers = [dubbo_call(raw, i, "9.9.9") for i in range(30, 45)]
    assert {answered_by(ev) for ev in answers} == expected
    if policy == "no_fallback":
        assert {ev.status for ev in answers} == {60} and "version='9.9.9'" in answers[0].error_message()


def test_group_and_tag_routing_with_keys_subset_fallback(meshd_run, provider):
    plain, g1, gray = provider("dubbo", "plain"), provider("dubbo", "g1"), provider("dubbo", "gray")
    m = meshd_run(rpc_config(
        [{"name": IFACE, "subset": {"selectors": [
            {"keys": ["tag", "version"], "fallback_policy": "keys_subset", "fallback_keys_subset": ["version"]}]},
          "endpoints": [{"address": plain.address, "metadata": {"version": "1.0.0"}},
                        {"address": g1.address, "metadata": {"version": "1.0.0", "group": "g1"}},
                        {"address": gray.address, "metadata": {"version": "1.0.0", "tag": "gray"}}]}],
        header_to_metadata={"dubbo.tag": "tag"}))
    raw = Raw(m.port("dubbo"), "dubbo")
    assert {answered_by(dubbo_call(raw, i)) for i in range(10)} == {"plain", "gray"}, \
        "no group: providers without a group only (Dubbo's own matching)"
    assert {answered_by(dubbo_call(raw, i, attachments={"group": "g1"})) for i in range(6)} == {"g1"}
    assert {answered_by(dubbo_call(raw, i, attachments={"dubbo.tag": "gray"})) for i in range(6)} == {"gray"}
    assert {answered_by(dubbo_call(raw, i, attachments={"dubbo.tag": "blue"})) for i in range(10)} == \
        {"plain", "gray"}, "no blue provider: the selector falls back to the version only"


def test_http_header_to_metadata_selects_a_subset(meshd_run, http_backend):
    a, b = http_backend("a"), http_backend("b")
    m = meshd_run(http_config({}, {"endpoints": [{"address": a.address, "metadata": {"version": "v1"}},
                                                 {"address": b.address, "metadata": {"version": "v2"}}]},
                              header_to_metadata={"x-version": "version"}))
    assert {server(get(m.port("http"), headers={"x-version": "v2"})[1]) for _ in range(6)} == {"b"}
    assert {server(get(m.port("http"))[1]) for _ in range(6)} == {"a", "b"}


def test_zone_aware_routing_prefers_the_local_zone_and_spills_over(meshd_run, http_backend, loop_thread):
    local, remote = http_backend("local"), http_backend("remote")
    m = meshd_run(http_config({}, {"zone_aware": {"local_zone": "z1", "min_healthy_percent": 100},
                                   "health_checks": [{"type": "tcp", "interval": "100ms", "interval_jitter": "0s",
                                                      "timeout": "200ms", "unhealthy_threshold": 1}],
                                   "endpoints": [{"address": local.address, "zone": "z1"},
                                                 {"address": remote.address, "zone": "z2"}]}))
    assert {server(get(m.port("http"))[1]) for _ in range(8)} == {"local"}
    loop_thread.run(local.stop())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        eps = {e["address"]: e["healthy"] for e in m.admin_json("/clusters")["clusters"][0]["endpoints"]}
        if not eps[local.address]:
            break
        time.sleep(0.05)
    assert {server(get(m.port("http"))[1]) for _ in range(8)} == {"remote"}, "no healthy local host: spill over"


# ---------------------------------------------------------------------------------------------- retries
def test_retry_on_reset_goes_to_a_different_host(meshd_run, http_backend):
    flaky, good = http_backend("flaky"), http_backend("good")
    flaky.script.reset_next = 1000
    m = meshd_run(http_config({"retry_policy": {"retry_on": "reset", "num_retries": 3,
                                                "retry_back_off": {"base_interval": "1ms"}}},
                              {"lb_policy": "round_robin",
                               "endpoints": [{"address": flaky.address}, {"address": good.address}]}))
    for _ in range(10):
        status, body = get(m.port("http"))
        assert status == 200 and server(body) == "good"
    resets = flaky.script.requests
    assert resets >= 5 and good.script.requests == 10, \
        "every reset is retried, on the other host (previous_hosts predicate): never twice on flaky"
    prom = m.admin("/stats/prometheus")[1]
    assert f'meshd_upstream_attempts_total{{cluster="c",outcome="reset",retry="false"}} {float(resets)}' in prom
    assert f'meshd_upstream_attempts_total{{cluster="c",outcome="ok",retry="true"}} {float(resets)}' in prom
    if resets < 10:
        assert f'meshd_upstream_attempts_total{{cluster="c",outcome="ok",retry="false"}} {float(10 - resets)}' in prom


def test_rpc_retries_only_where_configured(meshd_run, provider):
    busy, fine = provider("dubbo", "busy"), provider("dubbo", "fine")
    busy.script.status = 100
    endpoints = [{"address": busy.address}, {"address": fine.address}]
    m = meshd_run(rpc_config(
        [{"name": IFACE, "lb_policy": "round_robin", "endpoints": endpoints},
         {"name": "retrying", "lb_policy": "round_robin", "endpoints": endpoints}],
        [{"match": {"service": IFACE, "method": "sayHello", "headers": [{"name": "retry", "present": True}]},
          "route": {"cluster": "retrying", "retry_policy": {"retry_on": "overloaded", "num_retries": 2,
                                                            "retry_back_off": {"base_interval": "1ms"}}}}]))
    raw = Raw(m.port("dubbo"), "dubbo")
    plain = [dubbo_call(raw, i).status for i in range(10)]
    assert sorted(plain) == [20] * 5 + [100] * 5, "no retry policy: the provider's status 100 reaches the caller"
    retried = [dubbo_call(raw, i, attachments={"retry": "1"}) for i in range(20, 30)]
    assert {(ev.status, answered_by(ev)) for ev in retried} == {(20, "fine")}


def test_per_try_timeout_then_success_on_the_next_rpc_host(meshd_run, provider):
    slow, fast = provider("bolt", "slow"), provider("bolt", "fast")
    slow.script.delay = 3.0
    m = meshd_run(rpc_config([{"name": IFACE, "lb_policy": "round_robin",
                               "endpoints": [{"address": slow.address}, {"address": fast.address}]}],
                             [{"match": {"service": IFACE}, "route": {
                                 "cluster": IFACE, "timeout": "2s",
                                 "retry_policy": {"retry_on": "timeout", "num_retries": 1, "per_try_timeout": "200ms",
                                                  "retry_back_off": {"base_interval": "1ms"}}}}]))
    raw = Raw(m.port("bolt"), "bolt")
    for rid in range(1, 5):
        t0 = time.monotonic()
        raw.send(bolt.encode_request(rid, f"{IFACE}:1.0", "echo", ["x"], arg_types=["java.lang.String"]))
        ev = raw.read()
        assert (ev.request_id, ev.status) == (rid, 0) and ev.sofa_response().app_response.startswith("fast:")
        assert time.monotonic() - t0 < 1.5


def test_caller_deadline_header_shortens_but_never_extends(meshd_run, http_backend):
    slow = http_backend("slow")
    slow.script.delay = 1.0
    m = meshd_run(http_config({"timeout": "400ms"}, {"endpoints": [{"address": slow.address}]}))
    t0 = time.monotonic()
    assert get(m.port("http"), headers={"x-envoy-upstream-rq-timeout-ms": "100"})[0] == 504
    short = time.monotonic() - t0
    t0 = time.monotonic()
    assert get(m.port("http"), headers={"x-envoy-upstream-rq-timeout-ms": "5000"})[0] == 504
    assert short < 0.35 and time.monotonic() - t0 < 0.9, "5000 ms may not extend the route's 400 ms"
    slow.script.delay = 0
    echoed = json.loads(get(m.port("http"), headers={"x-envoy-upstream-rq-timeout-ms": "3000"})[1])
    assert "x-envoy-upstream-rq-timeout-ms" not in echoed["headers"], "meshd consumes its deadline headers"


def test_retry_budget_caps_retries_under_a_full_outage(meshd_run, http_backend):
    down1, down2 = http_backend("d1"), http_backend("d2")
    for b in (down1, down2):
        b.script.status = 503
        b.script.delay = 0.2
    m = meshd_run(http_config({"retry_policy": {"retry_on": "5xx", "num_retries": 3,
                                                "retry_back_off": {"base_interval": "1ms"}}},
                              {"circuit_breakers": {"retry_budget": {"budget_percent": 20, "min_retry_concurrency": 2}},
                               "endpoints": [{"address": down1.address}, {"address": down2.address}]}))
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(lambda _: get(m.port("http"))[0], range(40)))
    assert statuses == [503] * 40
    attempts = down1.script.requests + down2.script.requests
    # without a budget: 40 × 4 = 160 attempts; with 20% of ~40 active (8, at least 2) concurrent retries
    assert 40 < attempts <= 40 + 3 * 8 + 8, attempts
    stats = m.admin_json("/clusters")["clusters"][0]["stats"]
    assert stats["retry_overflow"] > 0


def test_cluster_circuit_breaker_overflow_is_answered_in_protocol_and_counted(meshd_run, provider, http_backend):
    slow = provider("dubbo", "slow")
    slow.script.delay = 0.5
    b = http_backend("b")
    b.script.delay = 0.5
    config = rpc_config([{"name": IFACE, "circuit_breakers": {"max_requests": 2},
                          "endpoints": [{"address": slow.address}]}])
    config["listeners"].append({"name": "http", "address": "127.0.0.1:0", "protocol": "http",
                                "route_config": "main"})
    config["route_configs"] = [{"name": "main", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]}]
    config["clusters"].append({"name": "c", "circuit_breakers": {"max_requests": 1},
                               "endpoints": [{"address": b.address}]})
    m = meshd_run(config)
    raw = Raw(m.port("dubbo"), "dubbo")
    for rid in range(1, 5):
        raw.send(dubbo.encode_request(rid, IFACE, "sayHello", ["x"], param_types=["java.lang.String"],
                                      version="1.0.0"))
    statuses = sorted(raw.read().status for _ in range(4))
    assert statuses == [20, 20, 100, 100]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        http_statuses = sorted(pool.map(lambda _: get(m.port("http"))[0], range(3)))
    assert http_statuses == [200, 503, 503]
    prom = m.admin("/stats/prometheus")[1]
    assert f'meshd_upstream_overflow_total{{cluster="{IFACE}",kind="max_requests"}} 2.0' in prom
    assert 'meshd_upstream_overflow_total{cluster="c",kind="max_requests"} 2.0' in prom


# ------------------------------------------------------------------------------ outliers, health, panic
def test_outlier_ejection_and_return(meshd_run, http_backend):
    bad, good = http_backend("bad"), http_backend("good")
    bad.script.status = 500
    m = meshd_run(http_config({}, {"lb_policy": "round_robin", "outlier_detection": {
        "consecutive_5xx": 3, "base_ejection_time": "1s", "max_ejection_percent": 50, "interval": "1s"},
        "endpoints": [{"address": bad.address}, {"address": good.address}]}))
    statuses = [get(m.port("http"))[0] for _ in range(6)]
    assert sorted(statuses) == [200, 200, 200, 500, 500, 500], "round robin: every other request is a 500"
    assert {get(m.port("http"))[0] for _ in range(10)} == {200}, "ejected after three 5xx in a row"
    endpoint = next(e for e in m.admin_json("/clusters")["clusters"][0]["endpoints"] if e["address"] == bad.address)
    assert endpoint["outlier"]["ejected"] is True and endpoint["outlier"]["ejections"] == 1
    bad.script.status = None
    time.sleep(1.1)
    assert {server(get(m.port("http"))[1]) for _ in range(6)} == {"bad", "good"}, "it returns on its own"
    assert 'meshd_outlier_ejections_total{cluster="c"} 1.0' in m.admin("/stats/prometheus")[1]


@pytest.mark.parametrize("protocol", ["http", "dubbo", "bolt", "tcp"])
def test_active_health_check_marks_a_stopped_provider_unhealthy(meshd_run, http_backend, provider, loop_thread,
                                                                protocol):
    if protocol in ("http", "tcp"):
        victim, other = http_backend("victim"), http_backend("other")
    else:
        victim, other = provider(protocol, "victim"), provider(protocol, "other")
    check = {"type": protocol, "interval": "200ms", "interval_jitter": "0s", "timeout": "300ms",
             "unhealthy_threshold": 2, "healthy_threshold": 1, "http": {"path": "/healthz"}}
    m = meshd_run(http_config({}, {"health_checks": [check],
                                   "endpoints": [{"address": victim.address}, {"address": other.address}]}))

    def healthy():
        return {e["address"]: e["healthy"] for e in m.admin_json("/clusters")["clusters"][0]["endpoints"]}

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(healthy().values()):
        time.sleep(0.05)
    assert all(healthy().values())
    loop_thread.run(victim.stop())
    t0 = time.monotonic()
    while healthy()[victim.address] and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    assert healthy() == {victim.address: False, other.address: True}
    assert time.monotonic() - t0 < 0.2 * 2 + 0.3 * 2 + 0.5, "within interval × threshold (+ probe timeouts)"
    if protocol == "http":
        assert {server(get(m.port("http"))[1]) for _ in range(6)} == {"other"}


def test_panic_threshold_spreads_over_all_hosts(meshd_run, http_backend):
    backends = [http_backend(f"b{i}") for i in range(4)]
    healthy_one = backends[0]
    check = {"type": "http", "interval": "100ms", "interval_jitter": "0s", "timeout": "300ms",
             "unhealthy_threshold": 1, "http": {"path": "/healthz", "expected_statuses": [200]}}
    for b in backends[1:]:
        b.script.status = 503                  # fails its health check, still answers traffic (503)
    m = meshd_run(http_config({}, {"panic_threshold": 50, "health_checks": [check],
                                   "endpoints": [{"address": b.address} for b in backends]}))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        eps = m.admin_json("/clusters")["clusters"][0]["endpoints"]
        if sum(1 for e in eps if not e["healthy"]) == 3:
            break
        time.sleep(0.05)
    served = {get(m.port("http"))[0] for _ in range(40)}
    assert served == {200, 503}, "25% healthy < 50% panic threshold: every host gets traffic"
    assert healthy_one.script.requests > 0
