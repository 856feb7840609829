"""The governance chain in the proxy: Sentinel resources per request, blocks answered in-protocol.

Each *attempt* of a request enters the engine (so retries meet the same limits and breakers):

- RPC: two resources, like Sentinel's Dubbo adapter — the service (``org.example.DemoService``) and the
  method (``org.example.DemoService:sayHello``) — inbound (system rules see them), with the caller app
  as origin (Dubbo ``remote.application`` attachment; Bolt ``app`` or ``rpc_trace_context.sofaCallerApp``
  header). Hotspot rules get the call's arguments and attachments, decoded only when a hotspot rule
  names the resource.
- HTTP: one resource, ``governance.http_resource`` (default ``{method}:{host}{route}``, the route's
  prefix/path), origin from ``governance.http_origin_header``.

A block answers the request itself: HTTP ``block_status`` (429) with ``block_body``, Dubbo status 100
(SERVER_THREADPOOL_EXHAUSTED_ERROR) naming the rule, Bolt status 4 (SERVER_THREADPOOL_BUSY). A throttled
pass makes the attempt wait on a loop timer. The attempt exits with its Outcome (errors: upstream
errors, timeouts, resets, error statuses, exception results) and the RT the engine measured.

With no rule loaded at all the proxy skips the engine entirely. ``GET /rules`` and
``PUT /rules/{kind}?dialect=go|java`` (atomic: a document with any invalid rule is refused with 400 and
every message, the old rules stay in force) are served on the admin API. Metrics:
``meshd_governance_handled_total{resource,result,block_type}``, ``meshd_governance_breaker_state``,
``meshd_governance_breaker_state_changed_total{resource,from,to}``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

from governance import RULE_KINDS, BlockError, MetricLogWriter, RuleError, Sentinel, State
from meshd.config import GovernanceConfig

log = logging.getLogger("meshd.governance")

KINDS = ("flow", "circuit_breaker", "isolation", "hotspot", "system")
_STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


class Governor:
    def __init__(self, config: GovernanceConfig, sentinel: Sentinel | None = None) -> None:
        self.config = config
        self.sentinel = sentinel or Sentinel()
        self.dialects: dict[str, str] = {}
        self.active = False
        self.handled: dict[tuple[str, str, str], int] = {}
        self.metric_log: MetricLogWriter | None = None
        self._http_keys: dict[tuple, str] = {}
        self.sentinel.on_state_change(self._state_changed)
        for kind in KINDS:
            rules = getattr(config, kind)
            if rules:
                self.load(kind, rules, config.dialect)

    # -- rules -----------------------------------------------------------------------------------------
    def load(self, kind: str, document: Any, dialect: str) -> bool:
        """Apply a whole document of ``kind`` atomically; raises RuleError (old rules kept) on any bad rule."""
        changed = self.sentinel.load_rules(kind, document, dialect=dialect, strict=True)
        self.dialects[kind] = dialect
        self.active = any(self.sentinel.rules(k) for k in KINDS)
        if changed:
            log.info("governance: %s rules now %d (%s dialect)", kind, len(self.sentinel.rules(kind)), dialect)
        return changed

    def rules_json(self) -> dict:
        return {kind: {"dialect": self.dialects.get(kind, self.config.dialect), "rules": self.sentinel.rules(kind)}
                for kind in KINDS}

    # -- requests --------------------------------------------------------------------------------------
    def enter_rpc(self, ex: Any) -> Any:
        """Enter the attempt of RPC exchange ``ex``: an Entry, or a BlockError."""
        view = ex.view
        service = view.service
        method = f"{service}:{view.method}"
        sentinel = self.sentinel
        args: tuple = ()
        attachments = None
        if sentinel.plan(method).hotspot or sentinel.plan(service).hotspot:
            args, attachments = _rpc_arguments(ex)
        origin = ""
        if sentinel.plan(method).origin_stats or sentinel.plan(service).origin_stats:
            origin = _rpc_origin(view)
        return self._enter((service, method), origin, args, attachments)

    def enter_http(self, ex: Any) -> Any:
        route = ex.route
        key = (ex.method, ex.host, route.path_label)
        resource = self._http_keys.get(key)
        if resource is None:
            resource = self.config.http_resource.format(method=ex.method.decode(), host=ex.host.decode("latin-1"),
                                                        route=route.path_label, path=ex.url.decode("latin-1"))
            if len(self._http_keys) < 10000:
                self._http_keys[key] = resource
        origin = ""
        if self.sentinel.plan(resource).origin_stats:
            name = self.config.http_origin_header.lower().encode()
            origin = next((v.decode("latin-1") for n, v in ex.raw if n.lower() == name), "")
        attachments = None
        if self.sentinel.plan(resource).hotspot:
            attachments = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in ex.raw}
        return self._enter((resource,), origin, (), attachments)

    def _enter(self, resources: tuple[str, ...], origin: str, args: tuple, attachments: Any) -> Any:
        try:
            entry = self.sentinel.entry_many(resources, origin=origin, args=args, attachments=attachments,
                                             inbound=True)
        except BlockError as err:
            key = (err.resource, "block", err.block_type)
            self.handled[key] = self.handled.get(key, 0) + 1
            return err
        for r in resources:
            key = (r, "pass", "")
            self.handled[key] = self.handled.get(key, 0) + 1
        return entry

    @staticmethod
    def block_message(err: BlockError) -> str:
        rule = err.rule.describe() if hasattr(err.rule, "describe") else repr(err.rule)
        return f"{err.message} (resource={err.resource}, type={err.block_type}, rule={rule})"

    @staticmethod
    def exit(entry: Any, outcome: Any) -> None:
        entry.exit(error=outcome)

    # -- observation -----------------------------------------------------------------------------------
    def _state_changed(self, resource: str, old: State, new: State, rule: Any, snapshot: Any) -> None:
        log.warning("governance: circuit breaker on %s %s -> %s (snapshot %s)", resource, old.label, new.label,
                    snapshot)

    def write_metric_log(self, now_ms: int) -> None:
        if self.metric_log is not None:
            self.metric_log.write(now_ms)

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        handled = CounterMetricFamily("meshd_governance_handled", "Governance decisions per resource",
                                      labels=["resource", "result", "block_type"])
        for (resource, result, block_type), n in sorted(self.handled.items()):
            handled.add_metric([resource, result, block_type], n)
        state = GaugeMetricFamily("meshd_governance_breaker_state",
                                  "Circuit breaker state (0 closed, 1 half-open, 2 open)", labels=["resource"])
        for status in self.sentinel.breaker_states():
            state.add_metric([status.resource], _STATE_VALUE.get(status.state, -1))
        changed = CounterMetricFamily("meshd_governance_breaker_state_changed",
                                      "Circuit breaker state changes", labels=["resource", "from", "to"])
        for (resource, old, new), n in sorted(self.sentinel.state_change_counts().items()):
            changed.add_metric([resource, old, new], n)
        yield handled
        yield state
        yield changed

    def describe(self) -> list:
        return []

    # -- admin API -------------------------------------------------------------------------------------
    def admin_routes(self, router: Any) -> None:
        router.add_get("/rules", self._get_rules)
        router.add_put("/rules/{kind}", self._put_rules)

    async def _get_rules(self, request: Any) -> Any:
        from aiohttp import web
        return web.json_response(self.rules_json())

    async def _put_rules(self, request: Any) -> Any:
        from aiohttp import web
        kind = request.match_info["kind"]
        if kind not in RULE_KINDS:
            return web.json_response({"error": f"unknown rule kind {kind!r}; known: {', '.join(KINDS)}"}, status=404)
        dialect = request.query.get("dialect", self.config.dialect)
        if dialect not in ("go", "java"):
            return web.json_response({"error": f"dialect must be go or java, got {dialect!r}"}, status=400)
        body = await request.read()
        try:
            changed = self.load(kind, body, dialect)
        except RuleError as err:
            return web.json_response({"error": "rules rejected; the previous rules stay in force",
                                      "errors": list(err.messages)}, status=400)
        return web.json_response({"kind": kind, "dialect": dialect, "changed": changed,
                                  "rules": len(self.sentinel.rules(kind))})


def _rpc_origin(view: Any) -> str:
    if view.adapter.name == "dubbo":
        return view.attachment("remote.application") or view.attachment("application") or ""
    return view.attachment("app") or view.attachment("rpc_trace_context.sofaCallerApp") or ""


def _rpc_arguments(ex: Any) -> tuple[tuple, dict]:
    """Arguments and attachments for hotspot rules (a full body decode: only when a hotspot rule asks)."""
    event = ex.event
    try:
        if ex.adapter.name == "dubbo":
            inv = event.invocation()
            return tuple(inv.args), {str(k): v for k, v in inv.attachments.items()}
        req = event.sofa_request()
        return tuple(req.args), dict(ex.view.attachments())
    except Exception as exc:  # noqa: BLE001 - a body hotspot cannot read: the rule is skipped
        log.debug("governance: cannot decode arguments for hotspot rules: %s", exc)
        return (), {}
