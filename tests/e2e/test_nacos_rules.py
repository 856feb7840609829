"""End to end: ``meshd run`` with a ``nacos`` rule source (Sentinel's ``SENTINEL_GROUP`` / ``{app}-flow-rules``):
a flow rule published to Nacos config takes effect on live HTTP and Dubbo traffic; a bad one is rejected
(``/rules/status``, ``/rules/history``, ``meshd_rules_rejected_total``) while the old rule keeps working."""

from __future__ import annotations

import json
import time

from tests.e2e.test_config_center import BLOCKED, PASSING, Traffic, config, flow, rejected_total, wait_for

GROUP, DATA_ID = "SENTINEL_GROUP", "order-service-flow-rules"


def test_a_rule_published_to_nacos_takes_effect_and_a_bad_one_is_rejected(meshd_run, http_backend, provider,
                                                                        nacos_server, tmp_path):
    backend, dubbo = http_backend("b"), provider("dubbo", "p")
    spec = {"type": "nacos", "name": "nacos-rules", "server_addresses": nacos_server.server_addr,
            "group": GROUP, "app": "order-service", "kinds": ["flow"], "dialect": "go",
            "cache_dir": str(tmp_path / "nacos")}
    m = meshd_run(config(backend, dubbo, [spec, {"type": "http"}]))
    traffic = Traffic(m)
    assert traffic.statuses() == PASSING
    deadline = time.monotonic() + 10
    while not nacos_server.listeners().get(f"public/{GROUP}/{DATA_ID}"):
        assert time.monotonic() < deadline, "meshd never listened to its Nacos config"
        time.sleep(0.02)

    nacos_server.publish_config(DATA_ID, GROUP, json.dumps(flow(0)))
    print(f"nacos: push to applied (seen by a client) {wait_for(traffic, BLOCKED, 'the blocking rule') * 1000:.1f} ms")

    before = rejected_total(m, "nacos-rules")
    nacos_server.publish_config(DATA_ID, GROUP, json.dumps(flow(0) + [{"resource": "x", "threshold": -1}]))
    deadline = time.monotonic() + 5
    while rejected_total(m, "nacos-rules") == before:
        assert time.monotonic() < deadline, "the bad document from Nacos was not rejected"
        time.sleep(0.02)
    assert traffic.statuses() == BLOCKED, "the rule in force keeps working"
    status = m.admin_json("/rules/status")
    mine = next(s for s in status["sources"] if s["name"] == "nacos-rules")
    assert mine["type"] == "nacos" and mine["connected"] is True and mine["kinds"] == ["flow"]
    assert mine["last_result"] == "rejected" and mine["last_rejection"] and "md5" in mine["last_seen"]["flow"]
    assert status["kinds"]["flow"]["source"] == "nacos-rules"
    history = m.admin_json("/rules/history?kind=flow")["history"]
    assert [e["status"] for e in history] == ["applied", "rejected"]
    assert 'resource "x"' in history[1]["errors"][0] and "threshold" in history[1]["errors"][0]
    status_code, reply = m.admin("/rules/flow", "PUT", json.dumps(flow(1000)).encode())
    assert status_code == 409 and "owned by rule source 'nacos-rules'" in reply

    nacos_server.publish_config(DATA_ID, GROUP, json.dumps(flow(1000)))
    wait_for(traffic, PASSING, "the lifted rule")
