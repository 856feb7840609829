"""Rule documents in both dialects: decoding, validation messages, strict loads, round-trips."""

from __future__ import annotations

import json

import pytest

from governance import RuleError, Sentinel

from gov_helpers import count_passes, passes

R = "test"


def errors(engine: Sentinel, kind: str, document, dialect: str = "go") -> tuple[str, ...]:
    return engine.validate_rules(kind, document, dialect).errors


class TestGoFlowValidation:
    def test_is_valid_flow_rule(self, engine: Sentinel):
        # G TestIsValidFlowRule
        bad = [
            {"threshold": 1, "resource": ""},
            {"threshold": -1.9, "resource": R},
            {"threshold": 5, "resource": R, "tokenCalculateStrategy": 1, "controlBehavior": 0},
            {"threshold": 5, "resource": R, "tokenCalculateStrategy": 1, "controlBehavior": 0,
             "statIntervalInMs": 6000000},
        ]
        good = [
            {"threshold": 10, "resource": R, "tokenCalculateStrategy": 1, "controlBehavior": 1,
             "warmUpPeriodSec": 10, "maxQueueingTimeMs": 10, "statIntervalInMs": 1000},
            {"threshold": 10, "resource": R, "tokenCalculateStrategy": 1, "controlBehavior": 1,
             "warmUpPeriodSec": 10, "maxQueueingTimeMs": 0, "statIntervalInMs": 1000},
        ]
        assert errors(engine, "flow", bad) == (
            'flow rule #0 (resource ""): resource: must be a non-empty string',
            'flow rule #1 (resource "test"): threshold: must be >= 0, got -1.9',
            'flow rule #2 (resource "test"): warmUpPeriodSec: must be > 0 for the WarmUp strategy',
            'flow rule #3 (resource "test"): warmUpPeriodSec: must be > 0 for the WarmUp strategy',
        )
        assert errors(engine, "flow", good) == ()

    def test_memory_adaptive_rule(self, engine: Sentinel):
        # G TestIsValidRule (MemoryAdaptive water marks and thresholds)
        rule = {"resource": "hello0", "tokenCalculateStrategy": 2, "controlBehavior": 0, "statIntervalInMs": 10,
                "lowMemUsageThreshold": 2, "highMemUsageThreshold": 1, "memLowWaterMarkBytes": 1,
                "memHighWaterMarkBytes": 2}
        assert errors(engine, "flow", [rule]) == ()
        rule.update(lowMemUsageThreshold=9, highMemUsageThreshold=9)
        assert errors(engine, "flow", [rule]) == (
            'flow rule #0 (resource "hello0"): highMemUsageThreshold: must be < lowMemUsageThreshold',)
        rule["lowMemUsageThreshold"] = 10
        assert errors(engine, "flow", [rule]) == ()
        rule["memLowWaterMarkBytes"] = 0
        assert "memLowWaterMarkBytes: must be > 0" in errors(engine, "flow", [rule])[0]
        rule.update(memLowWaterMarkBytes=100 * 1024 * 1024, memHighWaterMarkBytes=300 * 1024 * 1024)
        assert errors(engine, "flow", [rule]) == ()
        rule["memHighWaterMarkBytes"] = 64 * 1024**3          # above the 16 GiB the fixture reports
        assert errors(engine, "flow", [rule]) == (
            'flow rule #0 (resource "hello0"): memHighWaterMarkBytes: must not exceed the system\'s total '
            "memory (17179869184 bytes)",)

    def test_type_errors_name_the_field_and_value(self, engine: Sentinel):
        assert errors(engine, "flow", [{"resource": R, "threshold": "ten", "maxQueueingTimeMs": -1,
                                        "controlBehavior": "Sometimes", "regex": "yes"}]) == (
            'flow rule #0 (resource "test"): regex: must be true or false, got "yes"',
            'flow rule #0 (resource "test"): controlBehavior: unknown value \'Sometimes\' (expected one of Reject, '
            "Throttling or their numbers)",
            'flow rule #0 (resource "test"): threshold: must be a finite number, got "ten"',
            'flow rule #0 (resource "test"): maxQueueingTimeMs: must be >= 0, got -1',
        )

    def test_unsupported_strategy_pairs_and_relations(self, engine: Sentinel):
        assert errors(engine, "flow", [{"resource": R, "tokenCalculateStrategy": 3},
                                       {"resource": R, "relationStrategy": 1},
                                       {"resource": "[", "regex": True}]) == (
            'flow rule #0 (resource "test"): tokenCalculateStrategy: unsupported value 3 (0 Direct, 1 WarmUp, '
            "2 MemoryAdaptive)",
            'flow rule #1 (resource "test"): refResource: must be non-empty when relationStrategy is '
            "AssociatedResource",
            'flow rule #2 (resource "["): resource: invalid regular expression: unterminated character set at '
            "position 0",
        )

    def test_keys_ignore_case_and_enums_accept_names(self, engine: Sentinel):
        engine.load_rules("flow", '[{"Resource": "test", "THRESHOLD": 2, "TokenCalculateStrategy": "Direct", '
                                  '"controlbehavior": "Reject"}]')
        assert count_passes(engine, R, 5) == 2
        assert engine.rules("flow")[0]["threshold"] == 2.0


class TestJavaFlowValidation:
    @pytest.mark.parametrize(("rule", "message"), [
        ({"count": -1}, "count: must be >= 0, got -1"),
        ({"count": 1, "grade": 2}, "grade: must be 0 (THREAD) or 1 (QPS), got 2"),
        ({"count": 1, "strategy": 2, "refResource": "ctx"},
         "strategy: 2 (chain) is not supported: meshd has no invocation-chain contexts"),
        ({"count": 1, "strategy": 1}, "refResource: must be non-empty when strategy is 1 (relate)"),
        ({"count": 1, "controlBehavior": 1, "warmUpPeriodSec": 0}, "warmUpPeriodSec: must be > 0 for controlBehavior 1"),
        ({"count": 1, "controlBehavior": 2, "maxQueueingTimeMs": 0},
         "maxQueueingTimeMs: must be > 0 for controlBehavior 2"),
        ({"count": 1, "controlBehavior": 4}, "controlBehavior: must be 0-3, got 4"),
        ({"count": 1, "clusterMode": True}, "clusterConfig: is required when clusterMode is true"),
        ({"count": 1, "clusterMode": True, "clusterConfig": {"flowId": 0}},
         "clusterConfig.flowId: must be a positive integer, got 0"),
    ])
    def test_invalid_rules(self, engine: Sentinel, rule, message):
        assert errors(engine, "flow", [{"resource": R, **rule}], "java") == (f'flow rule #0 (resource "test"): {message}',)

    def test_defaults_and_round_trip(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": R, "count": 3, "limitApp": " "}], dialect="java")
        rule = engine.rules("flow")[0]
        assert rule == {"resource": R, "limitApp": "default", "grade": 1, "count": 3.0, "strategy": 0,
                        "refResource": None, "controlBehavior": 0, "warmUpPeriodSec": 10, "maxQueueingTimeMs": 500,
                        "clusterMode": False, "regex": False}
        assert engine.load_rules("flow", json.dumps([rule]), dialect="java") is False


class TestBreakerValidation:
    def test_go_applicable_rules(self, engine: Sentinel):
        # G Test_isApplicableRule_valid
        good = [
            {"resource": "abc01", "strategy": 0, "retryTimeoutMs": 1000, "minRequestAmount": 5, "statIntervalMs": 1000,
             "maxAllowedRtMs": 20, "threshold": 0.1},
            {"resource": "abc02", "strategy": 1, "retryTimeoutMs": 1000, "minRequestAmount": 5, "statIntervalMs": 1000,
             "threshold": 0.3},
            {"resource": "abc02", "strategy": 2, "retryTimeoutMs": 1000, "minRequestAmount": 5, "statIntervalMs": 1000,
             "threshold": 10.0},
        ]
        assert errors(engine, "circuit_breaker", good) == ()

    def test_go_inapplicable_rules(self, engine: Sentinel):
        # G Test_isApplicableRule_invalid + Test_onUpdateRules_invalid
        bad = [
            {"resource": "abc01", "strategy": 0, "retryTimeoutMs": 1000, "minRequestAmount": 10050,
             "statIntervalMs": 1000, "maxAllowedRtMs": 5, "threshold": -1.0},
            {"resource": "abc02", "strategy": 1, "retryTimeoutMs": 1000, "minRequestAmount": 5,
             "statIntervalMs": 1000, "threshold": -0.3},
            {"resource": "", "strategy": 1, "retryTimeoutMs": 1000, "minRequestAmount": 5, "statIntervalMs": 1000},
            {"resource": "abc"},
            {"resource": "abc", "strategy": 1, "retryTimeoutMs": 1, "statIntervalMs": 1, "threshold": 1.5},
            {"resource": "abc", "strategy": 9, "retryTimeoutMs": 1, "statIntervalMs": 1},
        ]
        assert errors(engine, "circuit_breaker", bad) == (
            'circuit_breaker rule #0 (resource "abc01"): threshold: must be >= 0, got -1',
            'circuit_breaker rule #1 (resource "abc02"): threshold: must be >= 0, got -0.3',
            'circuit_breaker rule #2 (resource ""): resource: must be a non-empty string',
            'circuit_breaker rule #3 (resource "abc"): statIntervalMs: must be > 0',
            'circuit_breaker rule #3 (resource "abc"): retryTimeoutMs: must be > 0',
            'circuit_breaker rule #4 (resource "abc"): threshold: a ratio must be within [0.0, 1.0], got 1.5',
            'circuit_breaker rule #5 (resource "abc"): strategy: unsupported value 9 (0 SlowRequestRatio, '
            "1 ErrorRatio, 2 ErrorCount)",
        )

    @pytest.mark.parametrize(("rule", "message"), [
        ({"grade": 0, "count": 10, "timeWindow": 0}, "timeWindow: must be > 0 (seconds), got 0"),
        ({"grade": 0, "count": 10, "timeWindow": 1, "minRequestAmount": 0}, "minRequestAmount: must be > 0, got 0"),
        ({"grade": 0, "count": 10, "timeWindow": 1, "slowRatioThreshold": 1.5},
         "slowRatioThreshold: must be within [0.0, 1.0], got 1.5"),
        ({"grade": 1, "count": 2, "timeWindow": 1}, "count: an exception ratio must be <= 1, got 2"),
        ({"grade": 3, "count": 2, "timeWindow": 1},
         "grade: must be 0 (slow RT ratio), 1 (exception ratio) or 2 (exception count), got 3"),
    ])
    def test_java_degrade_rules(self, engine: Sentinel, rule, message):
        assert errors(engine, "degrade", [{"resource": R, **rule}], "java") == (
            f'circuit_breaker rule #0 (resource "test"): {message}',)

    def test_java_round_trip(self, engine: Sentinel):
        rule = {"resource": R, "limitApp": "default", "grade": 0, "count": 100.0, "timeWindow": 10,
                "minRequestAmount": 5, "slowRatioThreshold": 0.6, "statIntervalMs": 1000}
        engine.load_rules("circuit_breaker", [rule], dialect="java")
        assert engine.rules("circuit_breaker") == [rule]


class TestHotspotAndSystemValidation:
    @pytest.mark.parametrize(("rule", "message"), [
        ({"metricType": 1, "threshold": 1}, "durationInSec: must be > 0 for QPS rules"),
        ({"metricType": 0, "threshold": 1, "paramIndex": 1, "paramKey": "k"},
         "paramKey: paramIndex and paramKey are mutually exclusive (paramIndex must be <= 0 with a paramKey)"),
        ({"metricType": 1, "durationInSec": 1, "burstCount": -1}, "burstCount: must be >= 0"),
        ({"metricType": 0, "threshold": 1.5}, "threshold: must be an integer, got 1.5"),
        ({"metricType": 0, "specificItems": [{"valKind": 0, "valStr": "x", "threshold": 1}]},
         "specificItems[0].valStr: cannot parse 'x' as valKind 0"),
        ({"metricType": 0, "specificItems": [{"valKind": 7, "valStr": "x", "threshold": 1}]},
         "specificItems[0].valKind: must be 0 (int), 1 (string), 2 (bool) or 3 (float64), got 7"),
    ])
    def test_go_hotspot(self, engine: Sentinel, rule, message):
        assert errors(engine, "hotspot", [{"resource": R, **rule}]) == (f'hotspot rule #0 (resource "test"): {message}',)

    def test_java_hotspot(self, engine: Sentinel):
        assert errors(engine, "param_flow", [{"resource": R, "count": 1}], "java") == (
            'hotspot rule #0 (resource "test"): paramIdx: is required',)
        result = engine.validate_rules("hotspot", [{"resource": R, "paramIdx": 0, "count": 9, "paramFlowItemList": [
            {"object": "7", "count": 1, "classType": "int"}, {"object": "x", "count": 2}]}], "java")
        assert result.errors == () and result.rules[0].specific_items == ((7, 1), ("x", 2))

    @pytest.mark.parametrize(("rule", "message"), [
        ({"metricType": 4, "triggerCount": 1.5}, "triggerCount: invalid CPU usage, valid range is [0.0, 1.0], got 1.5"),
        ({"metricType": 0, "triggerCount": -1}, "triggerCount: must be >= 0, got -1"),
        ({"metricType": 7, "triggerCount": 1}, "metricType: invalid metric type 7 (0 Load, 1 AvgRT, 2 Concurrency, "
                                               "3 InboundQPS, 4 CpuUsage)"),
    ])
    def test_go_system(self, engine: Sentinel, rule, message):
        assert errors(engine, "system", [rule]) == (f'system rule #0 (resource ""): {message}',)


class TestLoading:
    def test_valid_rules_load_beside_invalid_ones(self, engine: Sentinel):
        changed = engine.load_rules("flow", [{"resource": R, "threshold": 1}, {"resource": "", "threshold": 1},
                                             "not a rule"])
        assert changed is True
        assert [r["resource"] for r in engine.rules("flow")] == [R]
        assert engine.load_errors("flow") == ('flow rule #1 (resource ""): resource: must be a non-empty string',
                                              'flow rule #2: must be a JSON object, got "not a rule"')

    def test_strict_load_refuses_the_document_and_keeps_the_old_rules(self, engine: Sentinel):
        engine.load_rules("flow", [{"resource": R, "threshold": 1}])
        with pytest.raises(RuleError) as info:
            engine.load_rules("flow", [{"resource": R, "threshold": 5}, {"resource": R, "threshold": -5}], strict=True)
        assert info.value.messages == ('flow rule #1 (resource "test"): threshold: must be >= 0, got -5',)
        assert engine.rules("flow")[0]["threshold"] == 1.0
        assert passes(engine, R) and not passes(engine, R)

    @pytest.mark.parametrize("document", ['{"resource": "x"}', "[1, 2", b"\xff\xfe", 42])
    def test_undecodable_documents_raise_and_change_nothing(self, engine: Sentinel, document):
        engine.load_rules("flow", [{"resource": R, "threshold": 1}])
        with pytest.raises(RuleError) as info:
            engine.load_rules("flow", document)
        assert info.value.messages[0].startswith("document: ")
        assert len(engine.rules("flow")) == 1
        assert engine.validate_rules("flow", document).errors == info.value.messages

    @pytest.mark.parametrize("document", [[], "", "  ", "null", None, b"[]", ()])
    def test_empty_documents_clear_the_kind(self, engine: Sentinel, document):
        engine.load_rules("flow", [{"resource": R, "threshold": 0}])
        assert engine.load_rules("flow", document) is True
        assert engine.rules("flow") == [] and passes(engine, R)
        assert engine.load_rules("flow", document) is False

    def test_dialect_and_kind_errors(self, engine: Sentinel):
        with pytest.raises(RuleError, match="dialect: must be one of go, java, got 'python'"):
            engine.load_rules("flow", [], dialect="python")
        with pytest.raises(ValueError, match="unknown rule kind 'authority'"):
            engine.load_rules("authority", [])

    def test_reference_documents(self, engine: Sentinel):
        # sentinel-golang tests/testdata/extension/helper/*.json
        assert engine.load_rules("flow", '[{"resource":"abc","threshold":100.0,"relationStrategy":0,'
                                         '"tokenCalculateStrategy":0,"controlBehavior":0,"refResource":"refDefault",'
                                         '"warmUpPeriodSec":10,"maxQueueingTimeMs":1000,"statIntervalInMs":0}]')
        assert engine.load_rules("circuit_breaker", '[{"resource":"abc","strategy":0,"retryTimeoutMs":10,'
                                                    '"minRequestAmount":10,"statIntervalMs":1000,"maxAllowedRtMs":100,'
                                                    '"threshold":0.1},{"resource":"abc","strategy":2,'
                                                    '"retryTimeoutMs":30,"minRequestAmount":30,"statIntervalMs":3000,'
                                                    '"threshold":30}]')
        assert engine.load_rules("system", '[{"metricType":0,"triggerCount":0.5,"strategy":1}]')
        assert len(engine.plan("abc").breakers) == 2 and engine.load_errors("circuit_breaker") == ()

    def test_go_rules_round_trip(self, engine: Sentinel):
        documents = {
            "flow": [{"resource": R, "threshold": 3, "tokenCalculateStrategy": 1, "warmUpPeriodSec": 5, "id": "f1"}],
            "circuit_breaker": [{"resource": R, "strategy": 1, "retryTimeoutMs": 10, "statIntervalMs": 10,
                                 "threshold": 0.5, "probeNum": 2}],
            "isolation": [{"resource": R, "threshold": 3}],
            "hotspot": [{"resource": R, "metricType": 1, "threshold": 3, "durationInSec": 1,
                         "specificItems": [{"valKind": 1, "valStr": "a", "threshold": 1}]}],
            "system": [{"metricType": 3, "triggerCount": 100, "strategy": -1}],
        }
        for kind, document in documents.items():
            assert engine.load_rules(kind, document) is True
            again = json.loads(json.dumps(engine.rules(kind)))
            assert engine.load_rules(kind, again) is False, kind
