"""The governance chain in the proxy: Sentinel resources per request, blocks answered in-protocol.

Each *attempt* of a request enters the engine (so retries meet the same limits and breakers):

- RPC: two resources, like Sentinel's Dubbo adapter — the service (``org.example.DemoService``) and the
  method (``org.example.DemoService:sayHello``) — inbound (system rules see them), with the caller app
  as origin (Dubbo ``remote.application`` attachment; Bolt ``app`` or ``rpc_trace_context.sofaCallerApp``
  header), or the verified TLS client's identity (its SPIFFE id or name) when the listener has mTLS. Hotspot
  rules get the call's arguments and attachments, decoded only when a hotspot rule names the resource.
- HTTP: one resource, ``governance.http_resource`` (default ``{method}:{host}{route}``, the route's
  prefix/path), origin the TLS client's identity, else ``governance.http_origin_header``.

A block answers the request itself: HTTP ``block_status`` (429) with ``block_body``, Dubbo status 100
(SERVER_THREADPOOL_EXHAUSTED_ERROR) naming the rule, Bolt status 4 (SERVER_THREADPOOL_BUSY). A throttled
pass makes the attempt wait on a loop timer. The attempt exits with its Outcome (errors: upstream
errors, timeouts, resets, error statuses, exception results) and the RT the engine measured.

With no rule loaded at all the proxy skips the engine entirely. ``GET /rules`` and
``PUT /rules/{kind}?dialect=go|java`` (atomic: a document with any invalid rule is refused with 400 and
every message, the old rules stay in force) are served by :mod:`meshd.admin` through :meth:`Governor.load`
and :meth:`Governor.rules_json`. Metrics:
``meshd_governance_handled_total{resource,result,block_type}``, ``meshd_governance_breaker_state``,
``meshd_governance_breaker_state_changed_total{resource,from,to}``.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator

from governance import RULE_KINDS, BlockError, MetricLogWriter, Sentinel, StagedRules, State
from meshd.config import GovernanceConfig

log = logging.getLogger("meshd.governance")

_STATE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


class Governor:
    def __init__(self, config: GovernanceConfig, sentinel: Sentinel | None = None) -> None:
        self.config = config
        self.sentinel = sentinel or Sentinel()
        self.dialects: dict[str, str] = {}
        self.enabled = True                    # Sentinel's global switch (the dashboard's setSwitch)
        self.active = False                    # enabled, and some rule in force: requests enter the engine
        self.inbound = False                   # pass requests as inbound only when system rules need it
        self.generation = 0                    # bumped whenever what a request enters may have changed
        self.metric_log: MetricLogWriter | None = None
        self._http_keys: dict[tuple, str] = {}
        self._prepared: dict[tuple, tuple] = {}   # per resource key: (resources, needs args, needs origin)
        self._referenced: frozenset[str] = frozenset()
        self.sentinel.on_state_change(self._state_changed)
        for kind in RULE_KINDS:
            rules = getattr(config, kind)
            if rules:
                self.load(kind, rules, config.dialect)

    # -- rules -----------------------------------------------------------------------------------------
    def load(self, kind: str, document: Any, dialect: str) -> bool:
        """Apply a whole document of ``kind`` atomically; raises RuleError (old rules kept) on any bad rule."""
        changed = self.sentinel.load_rules(kind, document, dialect=dialect, strict=True)
        self._loaded(kind, dialect, changed)
        return changed

    def stage(self, kind: str, validation: Any) -> StagedRules:
        """Validated rules on their way in, built in steps (``sentinel.build_staged``) beside those in force."""
        return self.sentinel.stage_rules(kind, validation)

    def commit(self, staged: StagedRules, dialect: str) -> bool:
        """Swap staged rules in at once (see :meth:`governance.Sentinel.commit_staged`)."""
        changed = self.sentinel.commit_staged(staged)
        self._loaded(staged.kind, dialect, changed)
        return changed

    def _loaded(self, kind: str, dialect: str, changed: bool) -> None:
        self.dialects[kind] = dialect
        self._update_active()
        self.inbound = bool(self.sentinel.rule_objects("system"))
        self._referenced = frozenset(r.ref_resource for r in self.sentinel.rule_objects("flow")
                                     if getattr(r, "ref_resource", ""))
        self._prepared.clear()                 # plans changed: which requests need args/origin may too
        self.generation += 1
        if changed:
            log.info("governance: %s rules now %d (%s dialect)", kind, len(self.sentinel.rule_objects(kind)), dialect)

    def set_enabled(self, enabled: bool) -> None:
        """Sentinel's switch: while off, no request enters the engine (nothing blocked, nothing counted);
        the rules stay loaded and apply again once it is back on."""
        self.enabled = enabled
        self._update_active()
        log.warning("governance: switched %s", "on" if enabled else "off (every request passes unchecked)")

    def _update_active(self) -> None:
        self.active = self.enabled and any(self.sentinel.rule_objects(k) for k in RULE_KINDS)

    def rules_json(self) -> dict:
        return {kind: {"dialect": self.dialects.get(kind, self.config.dialect), "rules": self.sentinel.rules(kind)}
                for kind in RULE_KINDS}

    # -- requests --------------------------------------------------------------------------------------
    def _prepare(self, resources: tuple[str, ...]) -> tuple:
        """The resources a request must enter: those with rules of their own, or read by another's rule
        (``refResource``). Statistics are kept for governed resources only; a request none of whose
        resources is governed skips the engine (``resources`` is empty)."""
        all_plans = [self.sentinel.plan(r) for r in resources]
        plans = [p for p in all_plans if p.checked or p.standalone or p.resource in self._referenced]
        if not plans and self.inbound:
            plans = all_plans[:1]              # system rules count every inbound request once
        prepared = (tuple(p.resource for p in plans), any(p.hotspot for p in plans),
                    any(p.origin_stats for p in plans))
        if len(self._prepared) < 10000:
            self._prepared[resources] = prepared
        return prepared

    def _plan_resources(self, plan: Any) -> tuple:
        """(resources, needs arguments, needs the caller's origin) of an RPC plan, worked out once per plan
        and rule generation."""
        if plan.gov_gen != self.generation:
            key = (plan.service, plan.method)
            prepared = self._prepared.get(key)
            if prepared is None:
                prepared = self._prepare((plan.service, f"{plan.service}:{plan.method}"))
                self._prepared[key] = prepared
            plan.gov, plan.gov_gen = prepared, self.generation
        return plan.gov

    def enter_rpc_batch(self, plan: Any, n: int) -> list | None:
        """The entries of ``n`` requests of one read that ``plan`` forwards, when the engine admits them as
        one (``Sentinel.entry_batch``: where that gives what ``n`` entries one by one give); None: enter
        each on its own."""
        resources, needs_args, needs_origin = self._plan_resources(plan)
        if not resources or needs_args or needs_origin or self.inbound:
            return None
        return self.sentinel.entry_batch(resources, n)

    def enter_rpc(self, ex: Any) -> Any:
        """Enter the attempt of RPC exchange ``ex``: an Entry, a BlockError, or None (nothing governs it)."""
        resources, needs_args, needs_origin = self._plan_resources(ex.plan)
        if not resources:
            return None
        origin = (ex.down.identity or ex.adapter.origin(ex.event)) if needs_origin else ""
        args: tuple = ()
        attachments = None
        if needs_args:
            args, attachments = _rpc_arguments(ex)
        try:
            if len(resources) == 1:
                return self.sentinel.entry(resources[0], origin, args, attachments, 1, self.inbound)
            return self.sentinel.entry_many(resources, origin, args, attachments, 1, self.inbound)
        except BlockError as err:
            return err

    def enter_http(self, ex: Any) -> Any:
        route = ex.route
        key = (ex.method, ex.host, route.path_label)
        resource = self._http_keys.get(key)
        if resource is None:
            resource = self.config.http_resource.format(method=ex.method.decode(), host=ex.host.decode("latin-1"),
                                                        route=route.path_label, path=ex.url.decode("latin-1"))
            if len(self._http_keys) < 10000:
                self._http_keys[key] = resource
        resources, needs_args, needs_origin = self._prepared.get((resource,)) or self._prepare((resource,))
        if not resources:
            return None
        origin = ""
        if needs_origin:
            name = self.config.http_origin_header.lower().encode()
            origin = ex.down.identity or next((v.decode("latin-1") for n, v in ex.raw if n.lower() == name), "")
        attachments = None
        if needs_args:
            attachments = {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in ex.raw}
        try:
            if len(resources) == 1:
                return self.sentinel.entry(resources[0], origin, (), attachments, 1, self.inbound)
            return self.sentinel.entry_many(resources, origin, (), attachments, 1, self.inbound)
        except BlockError as err:
            return err

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
        for resource, st in sorted(self.sentinel.stats().items()):
            if resource.startswith("__"):
                continue                       # the engine's own inbound node
            handled.add_metric([resource, "pass", ""], st.pass_total)
            for block_type, n in sorted(st.block_total.items()):
                handled.add_metric([resource, "block", block_type], n)
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

def _rpc_arguments(ex: Any) -> tuple[tuple, dict]:
    """Arguments and attachments for hotspot rules (a full body decode: only when a hotspot rule asks)."""
    event = ex.event
    try:
        if ex.adapter.name == "dubbo":
            inv = event.invocation()
            return tuple(inv.args), {str(k): v for k, v in inv.attachments.items()}
        req = event.sofa_request()
        view = ex.routing_view()
        return tuple(req.args), dict(view.attachments()) if view is not None else {}
    except Exception as exc:  # noqa: BLE001 - a body hotspot cannot read: the rule is skipped
        log.debug("governance: cannot decode arguments for hotspot rules: %s", exc)
        return (), {}
