"""The command center as the Sentinel dashboard drives it: the dashboard's exact requests, its parsers.

Requests are built the way ``sentinel-dashboard``'s ``SentinelApiClient`` / ``MetricFetcher`` build them
(each helper names the Java method it copies), and every answer is read back by a small Python copy of
the dashboard's parser (``JSON.parseArray`` into the rule class, then the ``*RuleEntity.from*`` mapping;
``MetricNode.fromThinString``; ``ResourceTreeNode.fromNodeVoList``), so a wrong field name, type or line
format fails here as it would fail in the dashboard. A real ``governance.Sentinel`` on a ``ManualClock``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from governance import ManualClock, RuleError, Sentinel, StaticSystemMetrics
from meshd.sentinel_dashboard.commands import SENTINEL_VERSION, CommandCenter, Response
from meshd.sentinel_dashboard.wire import hashmap_order, java_url_encode

T0 = 1_700_000_000_000


# ---------------------------------------------------------------- the dashboard's requests (SentinelApiClient)
def query_string(params: dict[str, str]) -> str:
    """``SentinelApiClient.queryString``: the params HashMap's order, empty values skipped, URLEncoder."""
    return "&".join(f"{java_url_encode(k)}={java_url_encode(params[k])}" for k in hashmap_order(params)
                    if params[k])


def dashboard_get(center: CommandCenter, api: str, params: dict[str, str] | None = None) -> Response:
    """``SentinelApiClient.executeCommand`` with ``useHttpPost=false``: ``GET http://ip:port/api?query``."""
    target = "/" + api + ("?" + query_string(params) if params else "")
    return center.handle_http("GET", target, {"Host": "127.0.0.1:8719"})


def dashboard_post(center: CommandCenter, api: str, params: dict[str, str]) -> Response:
    """``SentinelApiClient.postRequest`` (machine ``v >= 1.7.1``): a ``UrlEncodedFormEntity`` in UTF-8."""
    body = query_string(params).encode("utf-8")
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8", "Content-Length": str(len(body))}
    return center.handle_http("POST", "/" + api, headers, body)


def succeeded(response: Response) -> str:
    """``SentinelApiClient.executeCommand``'s callback: 2xx completes with the body, else an exception."""
    assert 200 <= response.status < 300, (response.status, response.text)
    return response.text


# ---------------------------------------------------------------- the dashboard's parsers (fastjson + entities)
LONG, DOUBLE, BOOL, STR, OBJ, LIST = "long", "double", "bool", "str", "obj", "list"
FLOW_RULE = {"id": (LONG, None), "resource": (STR, None), "limitApp": (STR, None), "regex": (BOOL, False),
             "grade": (LONG, 1), "count": (DOUBLE, 0.0), "strategy": (LONG, 0), "refResource": (STR, None),
             "controlBehavior": (LONG, 0), "warmUpPeriodSec": (LONG, 10), "maxQueueingTimeMs": (LONG, 500),
             "clusterMode": (BOOL, False), "clusterConfig": (OBJ, None)}
DEGRADE_RULE = {"id": (LONG, None), "resource": (STR, None), "limitApp": (STR, None), "grade": (LONG, 0),
                "count": (DOUBLE, 0.0), "timeWindow": (LONG, 0), "minRequestAmount": (LONG, 5),
                "slowRatioThreshold": (DOUBLE, 1.0), "statIntervalMs": (LONG, 1000)}
SYSTEM_RULE = {"id": (LONG, None), "highestSystemLoad": (DOUBLE, -1.0), "highestCpuUsage": (DOUBLE, -1.0),
               "qps": (DOUBLE, -1.0), "avgRt": (LONG, -1), "maxThread": (LONG, -1)}
PARAM_FLOW_RULE = {"id": (LONG, None), "resource": (STR, None), "limitApp": (STR, None), "grade": (LONG, 1),
                   "paramIdx": (LONG, None), "count": (DOUBLE, 0.0), "controlBehavior": (LONG, 0),
                   "maxQueueingTimeMs": (LONG, 0), "burstCount": (LONG, 0), "durationInSec": (LONG, 1),
                   "paramFlowItemList": (LIST, []), "clusterMode": (BOOL, False)}
PARAM_FLOW_ITEM = {"object": (STR, None), "count": (LONG, None), "classType": (STR, None)}
NODE_VO = {"id": (STR, None), "parentId": (STR, None), "resource": (STR, None), "threadNum": (LONG, None),
           **{name: (LONG, None) for name in ("passQps", "blockQps", "totalQps", "averageRt", "successQps",
                                              "exceptionQps", "oneMinutePass", "oneMinuteBlock",
                                              "oneMinuteException", "oneMinuteTotal", "timestamp")}}
CLUSTER_STATE = {"mode": (LONG, None), "lastModified": (LONG, None), "clientAvailable": (BOOL, None),
                 "serverAvailable": (BOOL, None)}
_TYPES = {LONG: (int,), DOUBLE: (int, float), BOOL: (bool,), STR: (str,), OBJ: (dict,), LIST: (list,)}


def parse_object(obj: dict, bean: dict[str, tuple[str, Any]]) -> dict:
    """fastjson ``JSON.parseObject(text, Bean.class)``: known properties typed, Java defaults otherwise."""
    out = {}
    for name, (kind, default) in bean.items():
        value = obj.get(name, default)
        if value is not None and name in obj:
            assert isinstance(value, _TYPES[kind]) and not (kind != BOOL and isinstance(value, bool)), \
                f"{name}: fastjson cannot read {value!r} as {kind}"
        out[name] = float(value) if kind == DOUBLE and value is not None else value
    return out


def parse_array(text: str, bean: dict[str, tuple[str, Any]]) -> list[dict]:
    """fastjson ``JSON.parseArray(text, Bean.class)`` (``SentinelApiClient.fetchItemsAsync``)."""
    data = json.loads(text)
    assert isinstance(data, list), text
    return [parse_object(item, bean) for item in data]


def metric_node_from_thin(line: str) -> dict:
    """``MetricNode.fromThinString`` (what ``MetricFetcher.handleBody`` calls per line)."""
    strs = line.split("|")
    node = {"timestamp": int(strs[0]), "resource": strs[1], "passQps": int(strs[2]), "blockQps": int(strs[3]),
            "successQps": int(strs[4]), "exceptionQps": int(strs[5]), "rt": int(strs[6])}
    if len(strs) >= 8:
        node["occupiedPassQps"] = int(strs[7])
    if len(strs) >= 9:
        node["concurrency"] = int(strs[8])
    if len(strs) == 10:
        node["classification"] = int(strs[9])
    return node


def fetcher_lines(body: str) -> list[dict]:
    """``MetricFetcher.handleResponse``/``handleBody``: split on ``\\n``, skip the excluded resources."""
    if not body or body.startswith("No metrics"):
        return []
    nodes = [metric_node_from_thin(line) for line in body.split("\n") if line]  # Java's split drops the trailing ""
    excluded = {"__total_inbound_traffic__", "__system_load__", "__cpu_usage__"}
    return [n for n in nodes if n["resource"] not in excluded]


def resource_tree(nodes: list[dict]) -> dict | None:
    """``ResourceTreeNode.fromNodeVoList``: the node without parentId is the root; children by parentId."""
    root, by_id = None, {}
    for vo in nodes:
        node = {**vo, "children": []}
        by_id[node["id"]] = node
        if not node["parentId"]:
            root = node
        elif node["parentId"] in by_id:
            by_id[node["parentId"]]["children"].append(node)
    return root


# ---------------------------------------------------------------- fixtures
class Pushes:
    """The daemon's ``push``: records each call and loads strictly into the engine (or answers ``error``)."""

    def __init__(self, engine: Sentinel) -> None:
        self.engine = engine
        self.calls: list[tuple[str, list, str]] = []
        self.error: str | None = None

    def __call__(self, kind: str, document: list, dialect: str) -> str | None:
        self.calls.append((kind, document, dialect))
        if self.error:
            return self.error
        self.engine.load_rules(kind, document, dialect, strict=True)
        return None


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now_ms=T0)


@pytest.fixture
def metrics() -> StaticSystemMetrics:
    return StaticSystemMetrics(load=1.25, cpu_usage=0.5, total_memory=8 << 30)


@pytest.fixture
def engine(clock: ManualClock, metrics: StaticSystemMetrics) -> Sentinel:
    return Sentinel(clock=clock, system_metrics=metrics)


@pytest.fixture
def pushes(engine: Sentinel) -> Pushes:
    return Pushes(engine)


@pytest.fixture
def center(engine: Sentinel, pushes: Pushes) -> CommandCenter:
    ids = iter(f"id-{n}" for n in range(1000))
    return CommandCenter(engine, pushes, hostname="mesh-host", ip="10.0.0.5", new_id=lambda: next(ids))


# ---------------------------------------------------------------- misc commands
def test_version_basic_info_and_api(center):
    assert succeeded(dashboard_get(center, "version")) == SENTINEL_VERSION
    assert succeeded(dashboard_get(center, "basicInfo")) == '{\n\t"machine": "mesh-host",\n\t"ip": "10.0.0.5"\n}'
    api = json.loads(succeeded(dashboard_get(center, "api")))
    assert {"url": "/getRules", "desc": "get all active rules by type, request param: type={ruleType}"} in api
    assert list(api[0]) == ["url", "desc"]  # JSONObject = HashMap order, as Java writes it
    assert {item["url"] for item in api} >= {"/setRules", "/metric", "/jsonTree", "/clusterNode", "/getSwitch"}


def test_unknown_and_invalid_commands_answer_simple_http_texts(center):
    response = dashboard_get(center, "gateway/getApiDefinitions")  # SentinelApiClient.fetchApis on a non-gateway app
    assert (response.status, response.text) == (400, "Unknown command `gateway/getApiDefinitions`")
    assert response.status == 400 and "Unknown command" in response.text  # SentinelApiClient.isCommandNotFound
    assert (center.handle_http("GET", "/", {}).status, center.handle_http("GET", "/", {}).text) == (400, "Invalid command")


def test_post_bodies_simple_http_refuses(center):
    refused = center.handle_http("POST", "/setRules", {"Content-Type": "application/json", "Content-Length": "2"}, b"[]")
    assert (refused.status, refused.text) == (415, "Only form-encoded post request is supported")
    empty = center.handle_http("POST", "/setRules", {"Content-Type": "application/x-www-form-urlencoded"}, b"")
    assert (empty.status, empty.text) == (411, "No legal Content-Length")
    broken = center.handle_http("GET", "/getRules?type=%zz", {})
    assert (broken.status, broken.text) == (500, "Command server error")


def test_switch_get_and_set(center, engine):
    seen = []
    center.on_switch = seen.append
    assert succeeded(dashboard_get(center, "getSwitch")) == "Sentinel switch value: true"
    assert succeeded(dashboard_get(center, "setSwitch", {"value": "false"})) == "Sentinel set switch value: false"
    assert center.enabled is False and seen == [False]
    assert succeeded(dashboard_get(center, "getSwitch")) == "Sentinel switch value: false"
    assert succeeded(dashboard_get(center, "setSwitch", {"value": "TRUE"})) == "Sentinel set switch value: TRUE"
    assert center.enabled is True and seen == [False, True]
    # Boolean.valueOf(null) is false: a setSwitch without value turns Sentinel off
    assert succeeded(dashboard_get(center, "setSwitch")) == "Sentinel set switch value: null"
    assert center.enabled is False


def test_cluster_mode_of_an_app_without_cluster_flow_control(center):
    # SentinelApiClient.fetchClusterMode: JSON.parseObject(r, ClusterStateSimpleEntity.class)
    text = succeeded(dashboard_get(center, "getClusterMode"))
    assert text == '{"mode":-1,"clientAvailable":false,"serverAvailable":false,"lastModified":-1}'
    state = parse_object(json.loads(text), CLUSTER_STATE)
    assert state == {"mode": -1, "lastModified": -1, "clientAvailable": False, "serverAvailable": False}
    # SentinelApiClient.modifyClusterMode: GET setClusterMode?mode=0; anything but "success" is a failure
    response = dashboard_get(center, "setClusterMode", {"mode": "0"})
    assert (response.status, response.text) == (400, "token client mode not available: no SPI found")


# ---------------------------------------------------------------- rules shown in the Java schema
def test_go_flow_rules_shown_as_flow_rule_entities(center, engine):
    engine.load_rules("flow", [
        {"id": "7", "resource": "svc:sayHello", "threshold": 100, "tokenCalculateStrategy": 1, "controlBehavior": 0,
         "warmUpPeriodSec": 30, "warmUpColdFactor": 3},
        {"id": "not-a-long", "resource": "svc", "threshold": 50, "controlBehavior": 1, "maxQueueingTimeMs": 200,
         "statIntervalInMs": 5000, "relationStrategy": 1, "refResource": "db"},
    ], "go", strict=True)
    # SentinelApiClient.fetchFlowRuleOfMachine: fetchRules(ip, port, "flow", FlowRule.class) -> FlowRuleEntity.fromFlowRule
    rules = parse_array(succeeded(dashboard_get(center, "getRules", {"type": "flow"})), FLOW_RULE)
    warm, spaced = rules
    assert warm == {"id": 7, "resource": "svc:sayHello", "limitApp": "default", "regex": False, "grade": 1,
                    "count": 100.0, "strategy": 0, "refResource": None, "controlBehavior": 1, "warmUpPeriodSec": 30,
                    "maxQueueingTimeMs": 0, "clusterMode": False, "clusterConfig": None}
    assert spaced["id"] is None                                  # a Long: a non-numeric Go id is left out
    assert (spaced["controlBehavior"], spaced["count"]) == (2, 10.0)  # 50 per 5 s = 10 per second
    assert (spaced["strategy"], spaced["refResource"], spaced["maxQueueingTimeMs"]) == (1, "db", 200)


def test_go_breaker_system_and_hotspot_rules_in_the_java_schema(center, engine):
    engine.load_rules("circuit_breaker", [
        {"resource": "svc", "strategy": 0, "retryTimeoutMs": 2500, "minRequestAmount": 10, "statIntervalMs": 1000,
         "maxAllowedRtMs": 200, "threshold": 0.4},
        {"resource": "svc", "strategy": 2, "retryTimeoutMs": 3000, "minRequestAmount": 5, "statIntervalMs": 2000,
         "threshold": 30}], "go", strict=True)
    engine.load_rules("system", [{"metricType": 3, "triggerCount": 500}, {"metricType": 1, "triggerCount": 80}],
                      "go", strict=True)
    engine.load_rules("hotspot", [{"resource": "svc:get", "metricType": 1, "paramIndex": 0, "threshold": 10,
                                   "durationInSec": 1, "burstCount": 2, "specificItems": [
                                       {"valKind": 0, "valStr": "42", "threshold": 100},
                                       {"valKind": 1, "valStr": "vip", "threshold": 50}]}], "go", strict=True)
    # SentinelApiClient.fetchDegradeRuleOfMachine -> DegradeRuleEntity.fromDegradeRule
    slow, count = parse_array(succeeded(dashboard_get(center, "getRules", {"type": "degrade"})), DEGRADE_RULE)
    assert slow == {"id": None, "resource": "svc", "limitApp": "default", "grade": 0, "count": 200.0, "timeWindow": 3,
                    "minRequestAmount": 10, "slowRatioThreshold": 0.4, "statIntervalMs": 1000}
    assert (count["grade"], count["count"], count["timeWindow"], count["statIntervalMs"]) == (2, 30.0, 3, 2000)
    # SentinelApiClient.fetchSystemRuleOfMachine -> SystemRuleEntity.fromSystemRule
    qps, rt = parse_array(succeeded(dashboard_get(center, "getRules", {"type": "system"})), SYSTEM_RULE)
    assert qps == {"id": None, "highestSystemLoad": -1.0, "highestCpuUsage": -1.0, "qps": 500.0, "avgRt": -1,
                   "maxThread": -1}
    assert (rt["avgRt"], rt["qps"]) == (80, -1.0)
    # SentinelApiClient.fetchParamFlowRulesOfMachine: fetchItemsAsync(ip, port, "getParamFlowRules", null, ParamFlowRule.class)
    (param,) = parse_array(succeeded(dashboard_get(center, "getParamFlowRules")), PARAM_FLOW_RULE)
    assert {k: param[k] for k in ("resource", "grade", "paramIdx", "count", "controlBehavior", "burstCount",
                                  "durationInSec", "clusterMode")} == {
        "resource": "svc:get", "grade": 1, "paramIdx": 0, "count": 10.0, "controlBehavior": 0, "burstCount": 2,
        "durationInSec": 1, "clusterMode": False}
    items = [parse_object(item, PARAM_FLOW_ITEM) for item in param["paramFlowItemList"]]
    assert items == [{"object": "42", "count": 100, "classType": "int"},
                     {"object": "vip", "count": 50, "classType": "java.lang.String"}]


def test_authority_rules_read_empty_and_unknown_types_fail(center):
    # SentinelApiClient.fetchAuthorityRulesOfMachine
    assert succeeded(dashboard_get(center, "getRules", {"type": "authority"})) == "[]"
    response = dashboard_get(center, "getRules", {"type": "gateway"})
    assert (response.status, response.text) == (400, "invalid type")


# ---------------------------------------------------------------- rule pushes
# what SentinelApiClient.setRulesAsync sends: JSON.toJSONString(entities.map(FlowRuleEntity::toRule))
DASHBOARD_FLOW = ('[{"clusterMode":false,"controlBehavior":0,"count":2.0,"grade":1,"limitApp":"default",'
                  '"maxQueueingTimeMs":500,"regex":false,"resource":"svc:sayHello","strategy":0,"warmUpPeriodSec":10}]')
DASHBOARD_DEGRADE = ('[{"count":0.5,"grade":1,"limitApp":"default","minRequestAmount":5,"regex":false,'
                     '"resource":"svc","slowRatioThreshold":1.0,"statIntervalMs":1000,"timeWindow":10}]')
DASHBOARD_SYSTEM = '[{"avgRt":-1,"highestCpuUsage":-1.0,"highestSystemLoad":-1.0,"maxThread":-1,"qps":300.0,"regex":false}]'
DASHBOARD_PARAM = ('[{"burstCount":0,"clusterMode":false,"controlBehavior":0,"count":5.0,"durationInSec":1,"grade":1,'
                   '"limitApp":"default","maxQueueingTimeMs":0,"paramFlowItemList":[{"classType":"int","count":9,'
                   '"object":"7"}],"paramIdx":0,"regex":false,"resource":"svc:get"}]')


def test_set_rules_round_trip_through_push(center, engine, pushes, clock):
    # SentinelApiClient.setRulesAsync: POST setRules type=flow&data=...; anything but "success" is a failure
    assert succeeded(dashboard_post(center, "setRules", {"type": "flow", "data": DASHBOARD_FLOW})).strip() == "success"
    assert pushes.calls == [("flow", json.loads(DASHBOARD_FLOW), "java")]
    assert [r.dialect for r in engine.rule_objects("flow")] == ["java"]
    assert sum(_passes(engine, "svc:sayHello") for _ in range(5)) == 2          # count 2 is in force
    shown = parse_array(succeeded(dashboard_get(center, "getRules", {"type": "flow"})), FLOW_RULE)
    assert shown == parse_array(DASHBOARD_FLOW, FLOW_RULE)                      # what the dashboard pushed, back
    for rule_type, data, kind in (("degrade", DASHBOARD_DEGRADE, "circuit_breaker"), ("system", DASHBOARD_SYSTEM, "system")):
        assert succeeded(dashboard_post(center, "setRules", {"type": rule_type, "data": data})) == "success"
        bean = DEGRADE_RULE if rule_type == "degrade" else SYSTEM_RULE
        assert parse_array(succeeded(dashboard_get(center, "getRules", {"type": rule_type})), bean) == parse_array(data, bean)
        assert len(engine.rule_objects(kind)) == 1
    # an empty list clears the kind (the dashboard deleting its last rule)
    assert succeeded(dashboard_post(center, "setRules", {"type": "flow", "data": "[]"})) == "success"
    assert engine.rule_objects("flow") == ()


def test_set_param_flow_rules_round_trip(center, engine, pushes):
    # SentinelApiClient.setParamFlowRuleOfMachine: POST setParamFlowRules data=...; CommandConstants.MSG_SUCCESS
    assert succeeded(dashboard_post(center, "setParamFlowRules", {"data": DASHBOARD_PARAM})) == "success"
    assert pushes.calls[-1][0] == "hotspot" and pushes.calls[-1][2] == "java"
    (rule,) = parse_array(succeeded(dashboard_get(center, "getParamFlowRules")), PARAM_FLOW_RULE)
    assert rule == parse_array(DASHBOARD_PARAM, PARAM_FLOW_RULE)[0]
    assert sum(_passes(engine, "svc:get", args=(1,)) for _ in range(8)) == 5
    assert sum(_passes(engine, "svc:get", args=(7,)) for _ in range(12)) == 9    # the specific item's count
    response = dashboard_post(center, "setParamFlowRules", {"type": "x"})
    assert (response.status, response.text) == (400, "Bad data")


@pytest.mark.parametrize("data, problem", [
    ('[{"resource":"svc","count":', "data is not JSON"),
    ('{"resource":"svc"}', "must be a JSON array"),
    ('[{"resource":"svc","count":-1,"grade":1}]', "count: must be >= 0"),
    ('[{"resource":"ok","count":1},{"resource":"svc","count":1,"strategy":2}]', "strategy: 2 (chain) is not supported"),
])
def test_bad_set_rules_documents_fail_and_change_nothing(center, engine, pushes, data, problem):
    engine.load_rules("flow", DASHBOARD_FLOW, "java", strict=True)
    before = engine.rule_objects("flow")
    response = dashboard_post(center, "setRules", {"type": "flow", "data": data})
    assert response.status == 400 and problem in response.text and "nothing changed" in response.text
    assert pushes.calls == [] and engine.rule_objects("flow") == before


def test_push_refusals_and_authority_rules(center, engine, pushes):
    pushes.error = "rule store is read-only (config center owns flow rules)"
    response = dashboard_post(center, "setRules", {"type": "flow", "data": DASHBOARD_FLOW})
    assert (response.status, response.text) == (400, pushes.error)
    pushes.error = None
    center.push = lambda kind, doc, dialect: (_ for _ in ()).throw(RuleError(["flow rule #0: boom"]))
    assert dashboard_post(center, "setRules", {"type": "flow", "data": DASHBOARD_FLOW}).text == "flow rule #0: boom"
    # SentinelApiClient.setAuthorityRuleOfMachine
    authority = '[{"limitApp":"app-a","regex":false,"resource":"svc","strategy":1}]'
    response = dashboard_post(center, "setRules", {"type": "authority", "data": authority})
    assert response.status == 400 and "authority rules are not supported" in response.text
    assert succeeded(dashboard_post(center, "setRules", {"type": "authority", "data": "[]"})) == "success"
    assert dashboard_post(center, "setRules", {"type": "bogus", "data": "[]"}).text == "invalid type"


def test_data_is_url_decoded_twice_as_java_does(center, engine):
    # ModifyRulesCommandHandler URL-decodes data again after the server did: "+" in JSON becomes a space
    data = DASHBOARD_FLOW.replace("svc:sayHello", "a+b")
    assert succeeded(dashboard_post(center, "setRules", {"type": "flow", "data": data})) == "success"
    assert engine.rule_objects("flow")[0].resource == "a b"


# ---------------------------------------------------------------- metrics and node views
def _passes(engine: Sentinel, resource: str, **kwargs: Any) -> bool:
    from governance import BlockError
    try:
        entry = engine.entry(resource, **kwargs)
    except BlockError:
        return False
    entry.exit()
    return True


def _load(engine: Sentinel, clock: ManualClock, seconds: int, per_second: int, resource: str = "svc:sayHello") -> None:
    """``per_second`` inbound requests of 5 ms each, spread over each of ``seconds`` seconds."""
    from governance import BlockError
    for _ in range(seconds):
        for _ in range(per_second):
            try:
                entry = engine.entry(resource, inbound=True)
            except BlockError:
                pass
            else:
                clock.advance(5)
                entry.exit()
                continue
            clock.advance(5)
        clock.advance(1000 - 5 * per_second)


def test_metric_lines_under_load(center, engine, clock):
    engine.load_rules("flow", '[{"resource":"svc:sayHello","count":3,"grade":1}]', "java", strict=True)
    _load(engine, clock, seconds=3, per_second=5)
    # MetricFetcher.fetchOnce: /metric?startTime=..&endTime=..&refetch=false
    body = succeeded(center.handle_http("GET", f"/metric?startTime={T0}&endTime={T0 + 6000}&refetch=false", {}))
    assert body.endswith("\n")
    all_nodes = [metric_node_from_thin(line) for line in body.split("\n") if line]
    lines = fetcher_lines(body)
    assert [(n["timestamp"], n["resource"], n["passQps"], n["blockQps"], n["successQps"], n["rt"]) for n in lines] == [
        (T0 + s * 1000, "svc:sayHello", 3, 2, 3, 5) for s in range(3)]
    assert {n["resource"] for n in all_nodes} == {"svc:sayHello", "__total_inbound_traffic__", "__system_load__",
                                                   "__cpu_usage__"}
    load = [n for n in all_nodes if n["resource"] == "__system_load__"]
    assert [(n["timestamp"], n["passQps"]) for n in load] == [(T0 + 3000, 12500)]   # value x 10000, this second
    assert [n["passQps"] for n in all_nodes if n["resource"] == "__cpu_usage__"] == [5000]
    # identity: only that resource, no system rows
    one = succeeded(center.handle_http("GET", f"/metric?startTime={T0 + 1000}&endTime={T0 + 1999}&identity=svc:sayHello", {}))
    assert [metric_node_from_thin(line)["timestamp"] for line in one.split("\n") if line] == [T0 + 1000]
    # no startTime: empty; maxLines without endTime: whole seconds
    assert succeeded(center.handle_http("GET", "/metric", {})) == ""
    capped = succeeded(center.handle_http("GET", f"/metric?startTime={T0}&maxLines=1&identity=x", {}))
    assert [line.split("|")[0] for line in capped.split("\n") if line] == [str(T0), str(T0)]  # resource + inbound


def test_metric_bad_times(center):
    assert center.handle_http("GET", "/metric?startTime=abc", {}).status == 500
    response = center.handle_http("GET", f"/metric?startTime={T0}&endTime=xyz", {})
    assert (response.status, response.text) == (400, "Error when retrieving metrics")


def test_cluster_node_and_json_tree(center, engine, clock):
    engine.load_rules("flow", '[{"resource":"svc:sayHello","count":3,"grade":1}]', "java", strict=True)
    engine.stat_node("idle")
    _load(engine, clock, seconds=1, per_second=5)
    # SentinelApiClient.fetchClusterNodeOfMachine(ip, port, includeZero=false): clusterNode?type=notZero
    nodes = parse_array(succeeded(dashboard_get(center, "clusterNode", {"type": "notZero"})), NODE_VO)
    assert [n["resource"] for n in nodes] == ["svc:sayHello"]
    node = nodes[0]
    assert (node["id"], node["parentId"], node["oneMinutePass"], node["oneMinuteBlock"], node["oneMinuteTotal"]) == (
        None, None, 3, 2, 5)
    assert node["timestamp"] == clock.now_ms() and node["threadNum"] == 0
    everything = parse_array(succeeded(dashboard_get(center, "clusterNode", {"type": "zero"})), NODE_VO)
    assert {n["resource"] for n in everything} == {"svc:sayHello", "idle"}
    # ResourceController: fetchResourceOfMachine(ip, port, type) = jsonTree, then ResourceTreeNode.fromNodeVoList
    tree = resource_tree(parse_array(succeeded(dashboard_get(center, "jsonTree", {"type": "root"})), NODE_VO))
    assert tree is not None and tree["resource"] == "machine-root"
    assert sorted(c["resource"] for c in tree["children"]) == ["idle", "svc:sayHello"]
    assert tree["oneMinuteTotal"] == 5
    by_id = json.loads(succeeded(dashboard_get(center, "clusterNodeById", {"id": "svc:sayHello"})))
    assert parse_object(by_id, NODE_VO)["oneMinutePass"] == 3
    assert succeeded(dashboard_get(center, "clusterNodeById", {"id": "missing"})) == "{}"
