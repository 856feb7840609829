"""Loaded rules as Sentinel Java's rule JSON (governance.java_json), from both dialects."""

from __future__ import annotations

import json

from governance import ManualClock, Sentinel
from governance.java_json import dumps, java_id, rules_json


def _engine() -> Sentinel:
    return Sentinel(clock=ManualClock(now_ms=1_700_000_000_000))


def test_fastjson_layout_sorted_compact_nulls_left_out():
    s = _engine()
    s.load_rules("flow", [{"resource": "r", "threshold": 5}], "go", strict=True)
    assert rules_json("flow", s.rule_objects("flow")) == (
        '[{"clusterMode":false,"controlBehavior":0,"count":5.0,"grade":1,"limitApp":"default",'
        '"maxQueueingTimeMs":0,"regex":false,"resource":"r","strategy":0,"warmUpPeriodSec":0}]')
    assert dumps([{"b": 1, "a": "é"}]) == '[{"a":"é","b":1}]'


def test_java_dialect_rules_come_back_as_loaded():
    s = _engine()
    flow = [{"clusterConfig": {"fallbackToLocalWhenFail": True, "flowId": 9, "thresholdType": 0},
             "clusterMode": True, "controlBehavior": 2, "count": 20.0, "grade": 1, "id": 3, "limitApp": "app-a",
             "maxQueueingTimeMs": 400, "regex": False, "resource": "svc", "strategy": 0, "warmUpPeriodSec": 10}]
    s.load_rules("flow", flow, "java", strict=True)
    assert json.loads(rules_json("flow", s.rule_objects("flow"))) == flow
    system = [{"avgRt": 50, "highestCpuUsage": 0.8, "highestSystemLoad": -1.0, "maxThread": -1, "qps": -1.0,
               "regex": False}]
    s.load_rules("system", system, "java", strict=True)
    assert json.loads(rules_json("system", s.rule_objects("system"))) == system


def test_go_only_shapes_projected():
    s = _engine()
    s.load_rules("flow", [{"resource": "m", "tokenCalculateStrategy": 2, "controlBehavior": 1, "threshold": 1,
                           "lowMemUsageThreshold": 100, "highMemUsageThreshold": 10, "memLowWaterMarkBytes": 1024,
                           "memHighWaterMarkBytes": 2048, "maxQueueingTimeMs": 10}], "go", strict=True)
    (rule,) = json.loads(rules_json("flow", s.rule_objects("flow")))
    assert (rule["controlBehavior"], rule["count"]) == (2, 100.0)
    s.load_rules("circuit_breaker", [{"resource": "c", "strategy": 1, "retryTimeoutMs": 500, "statIntervalMs": 1000,
                                      "threshold": 0.5, "probeNum": 3}], "go", strict=True)
    (breaker,) = json.loads(rules_json("circuit_breaker", s.rule_objects("circuit_breaker")))
    assert (breaker["grade"], breaker["count"], breaker["timeWindow"], breaker["slowRatioThreshold"]) == (1, 0.5, 1, 1.0)
    s.load_rules("hotspot", [{"resource": "h", "metricType": 0, "paramKey": "uid", "threshold": 3,
                              "specificItems": [{"valKind": 2, "valStr": "true", "threshold": 1},
                                                {"valKind": 3, "valStr": "1.5", "threshold": 2}]}], "go", strict=True)
    (param,) = json.loads(rules_json("hotspot", s.rule_objects("hotspot")))
    assert (param["grade"], param["paramIdx"], param["count"]) == (0, 0, 3.0)
    assert param["paramFlowItemList"] == [{"classType": "boolean", "count": 1, "object": "true"},
                                          {"classType": "double", "count": 2, "object": "1.5"}]


def test_ids_are_java_longs():
    assert (java_id(7), java_id("12"), java_id("abc"), java_id(True), java_id(None)) == (7, 12, None, None, None)
