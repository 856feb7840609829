"""The Sentinel command center's commands over a :class:`governance.Sentinel` (pure: no I/O, no asyncio).

:class:`CommandCenter` answers what a stock Sentinel dashboard asks an app's command center
(J ``SentinelApiClient``, ``MetricFetcher``), byte for byte as ``sentinel-transport-simple-http`` with
the handlers of ``sentinel-transport-common`` and ``sentinel-parameter-flow-control`` would:

* a handler's result is a 200 with the result's text; a failure (J ``CommandResponse.ofFailure``) a 400
  with the exception's message; an exception inside a handler a 500 ``Command server error``; an unknown
  command a 400 ``Unknown command `name` ``; an empty name a 400 ``Invalid command``.
* rules are shown in the Java schema whatever dialect they were loaded in (:mod:`governance.java_json`);
  authority rules do not exist in meshd's engine (``getRules?type=authority`` is ``[]``).
* ``setRules``/``setParamFlowRules`` never load rules themselves: the document is decoded (``data`` is
  URL-decoded a second time, as Java does), validated as Java-dialect rules, and handed to
  ``push(kind, rules, "java")``; ``None`` from ``push`` answers ``success``, a message answers a failure.
  A document that does not decode or validate is refused as a whole and ``push`` is not called.
* ``getSwitch``/``setSwitch`` hold Sentinel's global switch (J ``Constants.ON``) in :attr:`enabled` and
  tell ``on_switch`` about changes; the engine is not touched.

Differences from Java, on purpose: an unparsable or invalid rule document answers 400 with every problem
(Java answers 500 ``Command server error`` for bad JSON and silently skips invalid rules); the
``oneMinute*`` fields of node views cover the 10 s the engine's resource windows hold; the resource tree
is flat (``machine-root`` -> every resource: meshd has no invocation contexts).

Callers (the aiohttp shell in :mod:`meshd.sentinel_dashboard.server`) must not call it concurrently
from several threads; like the engine it runs on one event loop.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from governance import INBOUND_RESOURCE, RuleError, Sentinel
from governance.java_json import rules_json
from meshd.sentinel_dashboard.wire import (
    RequestError, hashmap_order, java_url_decode, parse_request,
)

log = logging.getLogger("meshd.sentinel_dashboard")

SENTINEL_VERSION = "1.8.9"   # J Constants.SENTINEL_VERSION at alibaba/Sentinel HEAD (>= 1.6.0: POST setRules)
CONTENT_TYPE = "text/plain; charset=utf-8"
SERVER_ERROR_MESSAGE = "Command server error"
INVALID_COMMAND_MESSAGE = "Invalid command"
ROOT_RESOURCE = "machine-root"
CPU_USAGE_RESOURCE = "__cpu_usage__"
SYSTEM_LOAD_RESOURCE = "__system_load__"
DEFAULT_MAX_LINES, MAX_LINES_LIMIT = 6000, 12000
#: dashboard rule type -> meshd rule kind (None: not supported by the engine)
RULE_TYPES: dict[str, str | None] = {"flow": "flow", "degrade": "circuit_breaker", "system": "system",
                                     "authority": None}
NOT_CLUSTER = -1             # J ClusterStateManager.CLUSTER_NOT_STARTED

Push = Callable[[str, list, str], "str | None"]


@dataclass(frozen=True)
class Response:
    """One answer: HTTP status, content type and body bytes."""

    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class CommandFailure(Exception):
    """J ``CommandResponse.ofFailure(ex)``: answered 400 with the message."""


def _ok(text: str | None) -> Response:
    return Response(200, CONTENT_TYPE, (text or "").encode("utf-8"))


def _fail(status: int, text: str) -> Response:
    return Response(status, CONTENT_TYPE, text.encode("utf-8"))


def _json_map(values: Mapping[str, Any]) -> str:
    """fastjson writing a ``HashMap``/``JSONObject``: the map's own (hash) order, compact."""
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(values[k], ensure_ascii=False)}"
                          for k in hashmap_order(values)) + "}"


class CommandCenter:
    """Sentinel's command handlers over one engine.

    ``push(kind, rules, dialect)`` receives meshd's rule kind (``flow``, ``circuit_breaker``, ``system``
    or ``hotspot``), the decoded JSON array (a list of dicts, already validated) and ``"java"``; it
    returns None once the rules are in force, or a message saying why not. ``hostname``/``ip``:
    what ``basicInfo`` reports. ``new_id``: NodeVo ids of ``jsonTree`` (Java uses random UUIDs).
    ``on_switch(enabled)``: called when ``setSwitch`` changes the global switch.
    """

    def __init__(self, sentinel: Sentinel, push: Push, *, hostname: str | None = None, ip: str = "127.0.0.1",
                 version: str = SENTINEL_VERSION, new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
                 on_switch: Callable[[bool], None] | None = None) -> None:
        self.sentinel = sentinel
        self.push = push
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.ip = ip
        self.version = version
        self.new_id = new_id
        self.on_switch = on_switch
        self.enabled = True
        # name -> (J @CommandMapping desc, handler); the descs are Java's, verbatim
        self.commands: dict[str, tuple[str, Callable[[Mapping[str, str]], str]]] = {
            "version": ("get sentinel version", lambda p: self.version),
            "api": ("get all available command handlers", self._api),
            "basicInfo": ("get sentinel config info", self._basic_info),
            "getRules": ("get all active rules by type, request param: type={ruleType}", self._get_rules),
            "setRules": ("modify the rules, accept param: type={ruleType}&data={ruleJson}", self._set_rules),
            "getParamFlowRules": ("Get all parameter flow rules", self._get_param_rules),
            "setParamFlowRules": ("Set parameter flow rules, while previous rules will be replaced.",
                                  self._set_param_rules),
            "metric": ("get and aggregate metrics, accept param: startTime={startTime}&endTime={endTime}"
                       "&maxLines={maxLines}&identify={resourceName}", self._metric),
            "clusterNode": ("get all clusterNode VO, use type=notZero to ignore those nodes with totalRequest <=0",
                            self._cluster_node),
            "clusterNodeById": ("get clusterNode VO by id, request param: id={resourceName}", self._node_by_id),
            "jsonTree": ("get tree node VO start from root node", self._json_tree),
            "systemStatus": ("get system status", self._system_status),
            "getSwitch": ("get sentinel switch status", self._get_switch),
            "setSwitch": ("set sentinel switch, accept param: value={true|false}", self._set_switch),
            "getClusterMode": ("get cluster mode status", self._get_cluster_mode),
            "setClusterMode": ("set cluster mode, accept param: mode={0|1} 0:client mode 1:server mode",
                               self._set_cluster_mode),
        }

    # ---- dispatch -----------------------------------------------------------------------------------
    def handle_http(self, method: str, target: str, headers: Mapping[str, str], body: bytes = b"") -> Response:
        """One HTTP request (``target`` = raw path and query) as ``HttpEventTask.run`` answers it."""
        try:
            request = parse_request(method, target, headers, body)
        except RequestError as err:
            return _fail(err.status, err.message)
        except ValueError:
            log.warning("command center: malformed request %s %s", method, target[:200])
            return _fail(500, SERVER_ERROR_MESSAGE)
        if not request.target.strip():
            return _fail(400, INVALID_COMMAND_MESSAGE)
        return self.handle(request.target, request.params)

    def handle(self, name: str, params: Mapping[str, str]) -> Response:
        """Run command ``name`` with its merged parameters."""
        command = self.commands.get(name)
        if command is None:
            return _fail(400, f"Unknown command `{name}`")
        try:
            return _ok(command[1](params))
        except CommandFailure as err:
            return _fail(400, str(err))
        except Exception:
            log.exception("command center: command %s failed", name)
            return _fail(500, SERVER_ERROR_MESSAGE)

    # ---- misc ---------------------------------------------------------------------------------------
    def _api(self, params: Mapping[str, str]) -> str:
        items = [_json_map({"url": "/" + name, "desc": self.commands[name][0]})
                 for name in hashmap_order(self.commands)]
        return "[" + ",".join(items) + "]"

    def _basic_info(self, params: Mapping[str, str]) -> str:
        """J ``HostNameUtil.getConfigString`` (hand-written JSON with tabs)."""
        return "{\n" + f'\t"machine": "{self.hostname}",\n' + f'\t"ip": "{self.ip}"\n' + "}"

    def _get_switch(self, params: Mapping[str, str]) -> str:
        return f"Sentinel switch value: {'true' if self.enabled else 'false'}"

    def _set_switch(self, params: Mapping[str, str]) -> str:
        value = params.get("value")
        enabled = value is not None and value.lower() == "true"   # Boolean.valueOf: anything else is false
        changed, self.enabled = enabled != self.enabled, enabled
        shown = "null" if value is None else value   # Java's string concatenation of null
        log.info("Sentinel set switch value: %s", shown)
        if changed and self.on_switch is not None:
            self.on_switch(enabled)
        return f"Sentinel set switch value: {shown}"

    def _get_cluster_mode(self, params: Mapping[str, str]) -> str:
        """J ``FetchClusterModeCommandHandler`` of an app with no token client/server SPI."""
        return _json_map({"mode": NOT_CLUSTER, "lastModified": -1, "clientAvailable": False,
                          "serverAvailable": False})

    def _set_cluster_mode(self, params: Mapping[str, str]) -> str:
        try:
            mode = int(params.get("mode", ""))
        except ValueError:
            raise CommandFailure("invalid parameter") from None
        if mode == 0:
            raise CommandFailure("token client mode not available: no SPI found")
        if mode == 1:
            raise CommandFailure("token server mode not available: no SPI found")
        return "success"

    # ---- rules --------------------------------------------------------------------------------------
    def _get_rules(self, params: Mapping[str, str]) -> str:
        rule_type = (params.get("type") or "").lower()
        if rule_type not in RULE_TYPES:
            raise CommandFailure("invalid type")
        kind = RULE_TYPES[rule_type]
        return "[]" if kind is None else rules_json(kind, self.sentinel.rule_objects(kind))

    def _get_param_rules(self, params: Mapping[str, str]) -> str:
        return rules_json("hotspot", self.sentinel.rule_objects("hotspot"))

    def _set_rules(self, params: Mapping[str, str]) -> str:
        data = _decode_data(params.get("data"))
        rule_type = (params.get("type") or "").lower()
        if rule_type not in RULE_TYPES:
            raise CommandFailure("invalid type")
        items = _rule_array(data)
        kind = RULE_TYPES[rule_type]
        if kind is None:
            if items:
                raise CommandFailure("authority rules are not supported by meshd's governance engine "
                                     "(no origin black/white lists); nothing changed")
            return "success"
        return self._validate_and_push(kind, items)

    def _set_param_rules(self, params: Mapping[str, str]) -> str:
        data = params.get("data")
        if data is None or not data.strip():
            raise CommandFailure("Bad data")
        return self._validate_and_push("hotspot", _rule_array(_decode_data(data)))

    def _validate_and_push(self, kind: str, items: list) -> str:
        validation = self.sentinel.validate_rules(kind, items, "java")
        if validation.errors:
            raise CommandFailure("rules rejected, nothing changed: " + "; ".join(validation.errors))
        try:
            problem = self.push(kind, items, "java")
        except RuleError as err:
            problem = "; ".join(err.messages) or str(err)
        if problem:
            raise CommandFailure(problem)
        return "success"

    # ---- metrics ------------------------------------------------------------------------------------
    def _metric(self, params: Mapping[str, str]) -> str:
        """J ``SendMetricCommandHandler`` over the engine's per-second items (completed seconds only)."""
        start_text, end_text = params.get("startTime"), params.get("endTime")
        identity = params.get("identity")
        if start_text is None or not start_text.strip():
            return ""
        start = int(start_text)   # Long.parseLong outside the handler's try: a bad value is a 500
        now = self._now_ms()
        completed = now - now % 1000
        try:
            if end_text is not None and end_text.strip():
                end = int(end_text)
                until = min((end // 1000 + 1) * 1000, completed)
                items = self.sentinel.metric_items(start // 1000 * 1000, until)
                if identity is not None:
                    items = [i for i in items if i.resource.replace("|", "_") == identity]
            else:
                max_lines = int(params.get("maxLines") or DEFAULT_MAX_LINES)
                items = _first_lines(self.sentinel.metric_items(start // 1000 * 1000, completed),
                                     min(max_lines, MAX_LINES_LIMIT))
        except ValueError:
            raise CommandFailure("Error when retrieving metrics") from None
        lines = [_thin(i.timestamp, i.resource, i.pass_qps, i.block_qps, i.complete_qps, i.error_qps, i.avg_rt,
                       i.occupied_pass_qps, i.concurrency, i.classification) for i in items]
        if identity is None or not identity.strip():
            for resource, value in ((SYSTEM_LOAD_RESOURCE, self._system_value("load")),
                                    (CPU_USAGE_RESOURCE, self._system_value("cpu_usage"))):
                if value > 0:
                    lines.append(_thin(completed, resource, int(value * 10000), 0, 0, 0, 0, 0, 0, 0))
        return "".join(line + "\n" for line in lines)

    def _system_value(self, name: str) -> float:
        try:
            return float(getattr(self.sentinel.system_metrics, name)())
        except Exception:
            return -1.0

    def _now_ms(self) -> int:
        return self.sentinel.clock.now_ns() // 1_000_000

    # ---- node views ---------------------------------------------------------------------------------
    def _node_views(self) -> dict[str, dict]:
        """NodeVo fields (without id/parentId) of every resource, ``oneMinute*`` over the engine's window."""
        now = self._now_ms()
        window: dict[str, list[int]] = {}
        for item in self.sentinel.metric_items(now - 60_000, now + 1):
            sums = window.setdefault(item.resource, [0, 0, 0])
            sums[0] += item.pass_qps
            sums[1] += item.block_qps
            sums[2] += item.error_qps
        views = {}
        for name, stats in self.sentinel.stats().items():
            passed, blocked, errors = window.get(name, (0, 0, 0))
            views[name] = {
                "resource": name, "threadNum": stats.concurrency, "passQps": int(stats.pass_qps),
                "blockQps": int(stats.block_qps), "totalQps": int(stats.pass_qps + stats.block_qps),
                "averageRt": int(stats.avg_rt), "successQps": int(stats.complete_qps),
                "exceptionQps": int(stats.error_qps), "oneMinutePass": passed, "oneMinuteBlock": blocked,
                "oneMinuteException": errors, "oneMinuteTotal": passed + blocked, "timestamp": now,
                "_avg_rt": stats.avg_rt, "_pass_qps": stats.pass_qps,
            }
        return views

    def _cluster_node(self, params: Mapping[str, str]) -> str:
        not_zero = (params.get("type") or "").lower() == "notzero"
        views = [v for name, v in self._node_views().items() if name != INBOUND_RESOURCE]
        return _dump_nodes(v for v in views if not not_zero or v["oneMinuteTotal"] > 0)

    def _node_by_id(self, params: Mapping[str, str]) -> str:
        name = params.get("id")
        if not name:
            raise CommandFailure("Invalid parameter: empty clusterNode name")
        view = self._node_views().get(name) if name != INBOUND_RESOURCE else None
        return "{}" if view is None else _dump_nodes([view])[1:-1]

    def _json_tree(self, params: Mapping[str, str]) -> str:
        """J ``FetchJsonTreeCommandHandler``: the root (an ``EntranceNode`` summing its children), then each resource."""
        children = [v for name, v in self._node_views().items() if name != INBOUND_RESOURCE]
        root_id = self.new_id()
        weighted = sum(c["_avg_rt"] * c["_pass_qps"] for c in children)
        pass_qps = sum(c["_pass_qps"] for c in children)
        root = {
            "id": root_id, "resource": ROOT_RESOURCE, "timestamp": self._now_ms(),
            "threadNum": sum(c["threadNum"] for c in children), "passQps": int(pass_qps),
            "blockQps": sum(c["blockQps"] for c in children), "totalQps": sum(c["totalQps"] for c in children),
            "averageRt": int(weighted / (pass_qps or 1)), "successQps": sum(c["successQps"] for c in children),
            "exceptionQps": 0, "oneMinuteException": 0,
            "oneMinutePass": sum(c["oneMinutePass"] for c in children),
            "oneMinuteBlock": sum(c["oneMinuteBlock"] for c in children),
            "oneMinuteTotal": sum(c["oneMinuteTotal"] for c in children),
        }
        nodes = [root] + [{**c, "id": self.new_id(), "parentId": root_id} for c in children]
        return _dump_nodes(nodes)

    def _system_status(self, params: Mapping[str, str]) -> str:
        stats = self.sentinel.resource_stats(INBOUND_RESOURCE)
        assert stats is not None
        return _json_map({"rqps": float(stats.complete_qps), "qps": float(stats.pass_qps),
                          "b": float(stats.block_qps), "r": float(stats.avg_rt), "t": stats.concurrency})

    def __repr__(self) -> str:
        return f"CommandCenter(enabled={self.enabled}, commands={len(self.commands)}, {self.sentinel!r})"


def _decode_data(data: str | None) -> str:
    """The second ``URLDecoder.decode`` Java's ``setRules``/``setParamFlowRules`` apply to ``data``."""
    if not data:
        return ""
    try:
        return java_url_decode(data)
    except ValueError as err:
        raise CommandFailure(str(err)) from None


def _rule_array(data: str) -> list:
    if not data.strip():
        return []
    try:
        items = json.loads(data)
    except json.JSONDecodeError as err:
        raise CommandFailure(f"rules rejected, nothing changed: data is not JSON: {err.msg} at "
                             f"line {err.lineno} column {err.colno}") from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise CommandFailure("rules rejected, nothing changed: data must be a JSON array of rules")
    return items


def _first_lines(items: list, max_lines: int) -> list:
    """J ``MetricsReader.readMetricsInOneFile``: ``max_lines`` lines, then the rest of that second."""
    out: list = []
    for item in items:
        if len(out) >= max_lines and item.timestamp != out[-1].timestamp:
            break
        out.append(item)
    return out


def _thin(ts: int, resource: str, *numbers: int) -> str:
    """J ``MetricNode.toThinString``: ts|resource|pass|block|success|exception|rt|occupiedPass|concurrency|class."""
    return "|".join([str(ts), resource.replace("|", "_"), *(str(n) for n in numbers)])


def _dump_nodes(nodes: Any) -> str:
    """fastjson of ``List<NodeVo>``: bean properties sorted, nulls (id/parentId of cluster nodes) left out."""
    clean = [{k: v for k, v in node.items() if not k.startswith("_") and v is not None} for node in nodes]
    return json.dumps(clean, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
